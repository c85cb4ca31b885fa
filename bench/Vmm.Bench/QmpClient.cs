using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vmm.Bench;

/// <summary>
/// Just enough QMP to drive QEMU from a benchmark: the greeting, qmp_capabilities, commands one at a time with
/// their answers (events in between are skipped).
/// </summary>
internal sealed class QmpClient : IDisposable
{
    private readonly Socket socket;
    private readonly StreamReader reader;
    private readonly Stream stream;

    private QmpClient(Socket socket)
    {
        this.socket = socket;
        stream = new NetworkStream(socket, ownsSocket: false);
        reader = new StreamReader(stream, Encoding.UTF8);
    }

    /// <summary>Connects to a QMP Unix socket, retrying while QEMU is still creating it.</summary>
    public static QmpClient Connect(string path, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                socket.Connect(new UnixDomainSocketEndPoint(path));
                var client = new QmpClient(socket);
                client.ReadMessage(); // the greeting
                client.Execute("qmp_capabilities");
                return client;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                socket.Dispose();
                Thread.Sleep(20);
            }
        }
    }

    /// <summary>Runs a command and returns its "return" value; a QMP error becomes an exception.</summary>
    public JsonNode? Execute(string command, object? arguments = null)
    {
        var request = new JsonObject { ["execute"] = command };
        if (arguments is not null)
        {
            request["arguments"] = JsonSerializer.SerializeToNode(arguments);
        }

        byte[] line = Encoding.UTF8.GetBytes(request.ToJsonString() + "\n");
        stream.Write(line);
        while (true)
        {
            JsonObject message = ReadMessage();
            if (message.ContainsKey("event"))
            {
                continue;
            }

            if (message["error"] is JsonNode error)
            {
                throw new InvalidOperationException($"QEMU refused {command}: {error.ToJsonString()}");
            }

            return message["return"];
        }
    }

    private JsonObject ReadMessage()
    {
        string line = reader.ReadLine() ?? throw new EndOfStreamException("QEMU closed its QMP socket");
        return JsonNode.Parse(line)?.AsObject() ?? throw new InvalidDataException($"not a QMP message: {line}");
    }

    public void Dispose()
    {
        reader.Dispose();
        stream.Dispose();
        socket.Dispose();
    }
}
