using System.Net.Sockets;
using System.Text.Json;
using System.Text.Unicode;
using System.Threading.Channels;
using Serilog;

namespace Vmm.Qmp;

/// <summary>
/// One connected client: its own negotiation state, a reader that frames, parses and dispatches its requests one by
/// one, and a writer that sends replies and events in order. A client that stops reading first stops being served
/// (its replies back up), and if it falls far behind on events it is disconnected; either way nobody else waits.
/// A client that vanishes only ends its own session.
/// </summary>
public sealed class QmpSession
{
    /// <summary>Unsent replies above this pause the reading of further requests from this client.</summary>
    private const long ReplyBacklogLimit = 256 * 1024;

    /// <summary>A client this many bytes behind on its events is not reading at all: disconnect it.</summary>
    private const long EventBacklogLimit = 16 * 1024 * 1024;

    private static readonly JsonDocumentOptions ParseOptions = new()
    {
        MaxDepth = JsonMessageFramer.DefaultMaxDepth,
        AllowDuplicateProperties = false,
    };

    private readonly Socket socket;
    private readonly QmpDispatcher dispatcher;
    private readonly ILogger log;
    private readonly Channel<byte[]> outgoing = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource closing = new();
    private readonly TaskCompletionSource finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long pendingBytes;
    private TaskCompletionSource? backlogDrained;
    private volatile bool negotiated;
    private Task writer = Task.CompletedTask;
    private int finishing;

    public QmpSession(int id, Socket socket, QmpDispatcher dispatcher, ILogger log)
    {
        Id = id;
        this.socket = socket;
        this.dispatcher = dispatcher;
        this.log = log;
    }

    public int Id { get; }

    /// <summary>True once this client sent qmp_capabilities: commands are allowed and events are delivered.</summary>
    public bool IsNegotiated => negotiated;

    /// <summary>Completes when the session has ended and its socket is closed.</summary>
    public Task Completion => finished.Task;

    public void CompleteNegotiation() => negotiated = true;

    public void Start(byte[] greeting)
    {
        Enqueue(greeting);
        writer = Task.Run(WriteLoopAsync);
        _ = Task.Run(ReadLoopAsync);
    }

    /// <summary>Queues an event line; only negotiated clients get events (as in QEMU).</summary>
    public void SendEvent(byte[] line)
    {
        if (!negotiated)
        {
            return;
        }

        if (Volatile.Read(ref pendingBytes) > EventBacklogLimit)
        {
            log.Warning("QMP client {Session} is not reading its events; disconnecting it", Id);
            Abort();
            return;
        }

        Enqueue(line);
    }

    /// <summary>Sends what is queued (up to <paramref name="timeout"/>), then closes. Used at VMM exit.</summary>
    public Task CloseAsync(TimeSpan timeout) => FinishAsync(timeout);

    private void Enqueue(byte[] line)
    {
        if (outgoing.Writer.TryWrite(line))
        {
            Interlocked.Add(ref pendingBytes, line.Length);
        }
    }

    private async Task ReadLoopAsync()
    {
        var framer = new JsonMessageFramer();
        var frames = new List<JsonFrame>();
        byte[] buffer = new byte[64 * 1024];
        try
        {
            while (!framer.IsClosed)
            {
                int read = await socket.ReceiveAsync(buffer, SocketFlags.None, closing.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                frames.Clear();
                framer.Feed(buffer.AsSpan(0, read), frames);
                foreach (JsonFrame frame in frames)
                {
                    if (frame.Message is { } message)
                    {
                        await HandleMessageAsync(message).ConfigureAwait(false);
                    }
                    else
                    {
                        Enqueue(QmpWire.Error(QmpErrorClass.GenericError, frame.Error!, null));
                    }

                    await WaitForReplyBacklogAsync().ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or IOException)
        {
            // The client went away or the session is being closed: nothing to answer any more.
        }
        catch (Exception e)
        {
            log.Error(e, "QMP client {Session}: unexpected failure", Id);
        }
        finally
        {
            await FinishAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
    }

    private async Task HandleMessageAsync(byte[] message)
    {
        if (!Utf8.IsValid(message))
        {
            Enqueue(QmpWire.Error(QmpErrorClass.GenericError, "JSON parse error, invalid UTF-8 sequence", null));
            return;
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(message, ParseOptions);
        }
        catch (JsonException e)
        {
            Enqueue(QmpWire.Error(QmpErrorClass.GenericError, $"JSON parse error, {e.Message}", null));
            return;
        }

        using (document)
        {
            QmpRequest request;
            try
            {
                request = QmpRequest.Parse(document.RootElement);
            }
            catch (QmpRequestException e)
            {
                Enqueue(QmpWire.Error(e.Error.ErrorClass, e.Error.Message, e.IdJson));
                return;
            }

            QmpReply reply = await dispatcher.ExecuteAsync(this, request, closing.Token).ConfigureAwait(false);
            Enqueue(reply.Line);
            foreach (Action action in reply.AfterReply)
            {
                action();
            }
        }
    }

    private async Task WaitForReplyBacklogAsync()
    {
        while (Volatile.Read(ref pendingBytes) > ReplyBacklogLimit)
        {
            var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref backlogDrained, drained);
            if (Volatile.Read(ref pendingBytes) <= ReplyBacklogLimit)
            {
                return;
            }

            await drained.Task.WaitAsync(closing.Token).ConfigureAwait(false);
        }
    }

    private async Task WriteLoopAsync()
    {
        try
        {
            // Not cancelled by `closing` while waiting: a graceful close completes the channel and lets it drain.
            await foreach (byte[] line in outgoing.Reader.ReadAllAsync().ConfigureAwait(false))
            {
                int sent = 0;
                while (sent < line.Length)
                {
                    sent += await socket.SendAsync(line.AsMemory(sent), SocketFlags.None, closing.Token).ConfigureAwait(false);
                }

                if (Interlocked.Add(ref pendingBytes, -line.Length) <= ReplyBacklogLimit)
                {
                    Interlocked.Exchange(ref backlogDrained, null)?.TrySetResult();
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or IOException)
        {
            // The client stopped reading or went away. Stop the reader too.
            closing.Cancel();
        }
        catch (Exception e)
        {
            log.Error(e, "QMP client {Session}: unexpected failure while sending", Id);
            closing.Cancel();
        }
    }

    private void Abort()
    {
        outgoing.Writer.TryComplete();
        closing.Cancel();
        socket.Dispose();
    }

    private async Task FinishAsync(TimeSpan flushTimeout)
    {
        if (Interlocked.Exchange(ref finishing, 1) != 0)
        {
            await finished.Task.ConfigureAwait(false);
            return;
        }

        try
        {
            outgoing.Writer.TryComplete();
            try
            {
                await writer.WaitAsync(flushTimeout).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                log.Debug("QMP client {Session}: output not flushed within {Timeout}", Id, flushTimeout);
            }

            closing.Cancel();
            try
            {
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Already gone.
            }

            socket.Dispose();
            log.Debug("QMP client {Session} disconnected", Id);
        }
        finally
        {
            finished.TrySetResult();
        }
    }
}
