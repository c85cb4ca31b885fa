using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vmm.Qmp.Client;

/// <summary>
/// A QMP client over a Unix socket, for `dotnet vmm monitor`: connects, reads the greeting, negotiates, and then
/// runs commands; replies are matched to requests by id, and events are handed to <see cref="EventReceived"/> as
/// they arrive (on the client's reader thread). Works with QEMU's QMP as well as vmm's.
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket socket;
    private readonly NetworkStream stream;
    private readonly ConcurrentDictionary<long, PendingReply> pending = new();
    private readonly TaskCompletionSource<JsonElement> greeting = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim sendGate = new(1, 1);
    private long nextId;
    private Task reader = Task.CompletedTask;

    private QmpClient(Socket socket)
    {
        this.socket = socket;
        stream = new NetworkStream(socket, ownsSocket: false);
    }

    /// <summary>Raised for each {"event": …} message, with the whole message.</summary>
    public event Action<JsonElement>? EventReceived;

    /// <summary>Completes when the server closes the connection.</summary>
    public Task Closed => closed.Task;

    public JsonElement Greeting => greeting.Task.Result;

    /// <summary>Connects, waits for the greeting and negotiates capabilities.</summary>
    public static async Task<QmpClient> ConnectAsync(string path, CancellationToken cancellation = default)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellation).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or ArgumentException)
        {
            socket.Dispose();
            throw new QmpConnectionException($"cannot connect to monitor socket {path}: {Reason(path, e)}", e);
        }

        var client = new QmpClient(socket);
        client.reader = Task.Run(client.ReadLoopAsync);
        try
        {
            await client.greeting.Task.WaitAsync(HandshakeTimeout, cancellation).ConfigureAwait(false);
            QmpResponse negotiation = await client.ExecuteAsync("qmp_capabilities", null, cancellation).WaitAsync(HandshakeTimeout, cancellation).ConfigureAwait(false);
            if (negotiation.IsError)
            {
                throw new QmpConnectionException($"monitor {path} refused capabilities negotiation: {negotiation.ErrorClass}: {negotiation.ErrorDescription}");
            }
        }
        catch (TimeoutException e)
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw new QmpConnectionException($"monitor socket {path} did not greet with QMP within {HandshakeTimeout.TotalSeconds:0} s", e);
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return client;
    }

    /// <summary>The kernel's reasons, said the way a user thinks of them (ENOENT reads as "cannot assign requested address").</summary>
    private static string Reason(string path, Exception e) => e switch
    {
        _ when !File.Exists(path) => "no such socket (is the VMM running with --monitor?)",
        SocketException { SocketErrorCode: SocketError.ConnectionRefused } => "nobody is listening on it (the VMM has exited?)",
        _ => e.Message,
    };

    /// <summary>
    /// Sends {"execute": command, "arguments": …, "id": n} and waits for the matching reply. <paramref name="onReply"/>,
    /// if given, runs on the reader thread as the reply arrives, so that output keeps the wire's order of replies
    /// and events.
    /// </summary>
    public async Task<QmpResponse> ExecuteAsync(string command, JsonObject? arguments, CancellationToken cancellation = default, Action<QmpResponse>? onReply = null)
    {
        long id = Interlocked.Increment(ref nextId);
        var reply = new PendingReply(onReply);
        pending[id] = reply;
        if (closed.Task.IsCompleted)
        {
            pending.TryRemove(id, out _);
            throw new QmpConnectionException("the monitor closed the connection");
        }

        var request = new JsonObject { ["execute"] = command };
        if (arguments is not null)
        {
            request["arguments"] = arguments.DeepClone();
        }

        request["id"] = id;
        byte[] line = Encoding.UTF8.GetBytes(request.ToJsonString() + "\n");
        await sendGate.WaitAsync(cancellation).ConfigureAwait(false);
        try
        {
            await stream.WriteAsync(line, cancellation).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            pending.TryRemove(id, out _);
            throw new QmpConnectionException($"the monitor closed the connection: {e.Message}", e);
        }
        finally
        {
            sendGate.Release();
        }

        return await reply.Completion.Task.WaitAsync(cancellation).ConfigureAwait(false);
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            using var lines = new StreamReader(stream, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false, leaveOpen: true);
            while (await lines.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                if (line.Length > 0)
                {
                    Dispatch(line);
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
            // Connection gone: handled below like an orderly close.
        }
        finally
        {
            var gone = new QmpConnectionException("the monitor closed the connection");
            greeting.TrySetException(gone);
            foreach (long id in pending.Keys)
            {
                if (pending.TryRemove(id, out PendingReply? waiter))
                {
                    waiter.Completion.TrySetException(gone);
                }
            }

            closed.TrySetResult();
        }
    }

    private void Dispatch(string line)
    {
        JsonElement message;
        try
        {
            using JsonDocument document = JsonDocument.Parse(line);
            message = document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return;
        }

        if (message.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        if (message.TryGetProperty("QMP", out _))
        {
            greeting.TrySetResult(message);
        }
        else if (message.TryGetProperty("event", out _))
        {
            EventReceived?.Invoke(message);
        }
        else if (message.TryGetProperty("id", out JsonElement id) && id.ValueKind == JsonValueKind.Number && id.TryGetInt64(out long number)
                 && pending.TryRemove(number, out PendingReply? waiter))
        {
            QmpResponse response = QmpResponse.From(message);
            waiter.OnReply?.Invoke(response);
            waiter.Completion.TrySetResult(response);
        }
    }

    private sealed record PendingReply(Action<QmpResponse>? OnReply)
    {
        public TaskCompletionSource<QmpResponse> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Not connected any more.
        }

        socket.Dispose();
        await reader.ConfigureAwait(false);
        await stream.DisposeAsync().ConfigureAwait(false);
        sendGate.Dispose();
    }
}
