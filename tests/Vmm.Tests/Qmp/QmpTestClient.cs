using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vmm.Tests.Qmp;

/// <summary>
/// A deliberately plain QMP client for the tests, independent of vmm's own client: a Unix socket, raw bytes out,
/// CR LF-separated lines in. Replies are read in order; events met on the way are kept in <see cref="Events"/>.
/// </summary>
public sealed class QmpTestClient : IDisposable
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(20);

    private readonly Socket socket;
    private readonly List<byte> received = [];
    private readonly byte[] buffer = new byte[64 * 1024];

    private QmpTestClient(Socket socket) => this.socket = socket;

    /// <summary>The greeting, read on connect.</summary>
    public JsonElement Greeting { get; private set; }

    /// <summary>Events read so far (while waiting for replies), in arrival order.</summary>
    public List<JsonElement> Events { get; } = [];

    /// <summary>The raw text of the last line read (to check verbatim echoes).</summary>
    public string LastLine { get; private set; } = "";

    public static QmpTestClient Connect(string path, bool negotiate = true)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Connect(new UnixDomainSocketEndPoint(path));
        var client = new QmpTestClient(socket);
        client.Greeting = client.ReadMessage();
        Assert.True(client.Greeting.TryGetProperty("QMP", out _), $"not a QMP greeting: {client.LastLine}");
        if (negotiate)
        {
            JsonElement reply = client.Execute("qmp_capabilities");
            Assert.True(reply.TryGetProperty("return", out _), $"negotiation failed: {client.LastLine}");
        }

        return client;
    }

    public void SendRaw(string text) => SendRaw(Encoding.UTF8.GetBytes(text));

    public void SendRaw(byte[] bytes) => socket.Send(bytes);

    /// <summary>Sends a command and returns the next reply (not an event) — the whole message.</summary>
    public JsonElement Execute(string command, object? arguments = null, string? idJson = null)
    {
        var text = new StringBuilder($"{{\"execute\": \"{command}\"");
        if (arguments is not null)
        {
            text.Append(", \"arguments\": ").Append(arguments is JsonNode node ? node.ToJsonString() : JsonSerializer.Serialize(arguments));
        }

        if (idJson is not null)
        {
            text.Append(", \"id\": ").Append(idJson);
        }

        SendRaw(text.Append("}\n").ToString());
        return ReadReply();
    }

    /// <summary>Executes and asserts success; returns the "return" value.</summary>
    public JsonElement Return(string command, object? arguments = null)
    {
        JsonElement reply = Execute(command, arguments);
        Assert.True(reply.TryGetProperty("return", out JsonElement value), $"{command} failed: {LastLine}");
        return value;
    }

    /// <summary>Executes and asserts failure with <paramref name="errorClass"/>; returns the description.</summary>
    public string Error(string command, object? arguments = null, string errorClass = "GenericError")
    {
        JsonElement reply = Execute(command, arguments);
        return ErrorOf(reply, errorClass);
    }

    public string ErrorOf(JsonElement reply, string errorClass = "GenericError")
    {
        Assert.True(reply.TryGetProperty("error", out JsonElement error), $"expected an error, got: {LastLine}");
        Assert.Equal(errorClass, error.GetProperty("class").GetString());
        return error.GetProperty("desc").GetString()!;
    }

    /// <summary>The next message that is not an event.</summary>
    public JsonElement ReadReply(TimeSpan? timeout = null)
    {
        while (true)
        {
            JsonElement message = ReadMessage(timeout);
            if (message.TryGetProperty("event", out _))
            {
                Events.Add(message);
                continue;
            }

            return message;
        }
    }

    /// <summary>An event by name: one already seen (and not yet taken), or the next to arrive.</summary>
    public JsonElement WaitForEvent(string name, TimeSpan? timeout = null)
    {
        DateTime deadline = DateTime.UtcNow + (timeout ?? DefaultTimeout);
        while (true)
        {
            int index = Events.FindIndex(e => e.GetProperty("event").GetString() == name);
            if (index >= 0)
            {
                JsonElement found = Events[index];
                Events.RemoveAt(index);
                return found;
            }

            TimeSpan left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                throw new TimeoutException($"no {name} event");
            }

            JsonElement message = ReadMessage(left);
            Assert.True(message.TryGetProperty("event", out _), $"unexpected non-event while waiting for {name}: {LastLine}");
            Events.Add(message);
        }
    }

    /// <summary>The next line as JSON. Fails the test on timeout or when the server closes the connection.</summary>
    public JsonElement ReadMessage(TimeSpan? timeout = null)
    {
        string? line = ReadLine(timeout ?? DefaultTimeout) ?? throw new IOException("the monitor closed the connection");
        using JsonDocument document = JsonDocument.Parse(line);
        return document.RootElement.Clone();
    }

    /// <summary>True when the server closes the connection (after any remaining lines) within the timeout.</summary>
    public bool WaitForClose(TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if (ReadLine(deadline - DateTime.UtcNow) is null)
                {
                    return true;
                }
            }
            catch (TimeoutException)
            {
                return false;
            }
        }

        return false;
    }

    /// <summary>Next CR LF (or LF) terminated line; null at end of stream.</summary>
    private string? ReadLine(TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            int newline = received.IndexOf((byte)'\n');
            if (newline >= 0)
            {
                string line = Encoding.UTF8.GetString(received.GetRange(0, newline).ToArray()).TrimEnd('\r');
                received.RemoveRange(0, newline + 1);
                LastLine = line;
                return line;
            }

            TimeSpan left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !socket.Poll(left, SelectMode.SelectRead))
            {
                throw new TimeoutException($"no complete line from the monitor within {timeout}; partial: {Encoding.UTF8.GetString(received.ToArray())}");
            }

            int read;
            try
            {
                read = socket.Receive(buffer);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                read = 0;
            }

            if (read == 0)
            {
                return null;
            }

            received.AddRange(buffer.AsSpan(0, read));
        }
    }

    public void Dispose() => socket.Dispose();
}
