using System.Collections.Concurrent;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;

namespace Vmm.Migration.Source;

/// <summary>
/// The source's reader of the return path: a thread that turns destination records into messages the migration
/// thread consumes (setup accepted, errors, completion, and postcopy page requests).
/// </summary>
public sealed class ReturnPath : IDisposable
{
    /// <summary>
    /// Messages waiting for the migration thread. The protocol has a few at a time (page requests are served on this
    /// thread); a destination that streams records while the source is busy writing would otherwise grow the queue
    /// without bound, so past this the destination is broken and the connection is aborted.
    /// </summary>
    public const int MaxQueued = 1024;

    private readonly RecordReader reader;
    private readonly Action abort;
    private readonly BlockingCollection<ReturnMessage> messages = new();
    private readonly Thread thread;

    /// <param name="reader">The return path.</param>
    /// <param name="abort">Ends the connection (both directions): the migration thread, perhaps blocked writing, fails.</param>
    public ReturnPath(RecordReader reader, Action? abort = null)
    {
        this.reader = reader;
        this.abort = abort ?? (() => { });
        thread = new Thread(Loop) { IsBackground = true, Name = "migration return path" };
        thread.Start();
    }

    /// <summary>Signalled whenever a message is queued.</summary>
    public SemaphoreSlim Arrived { get; } = new(0);

    /// <summary>
    /// Postcopy: when set, page requests are served right here on the reader thread instead of being queued — one
    /// cross-thread wake-up less on the path a blocked vCPU waits for.
    /// </summary>
    public Action<ReturnMessage>? PageRequestHandler { get; set; }

    /// <summary>
    /// Timestamp (Stopwatch) at which the destination's Complete was read here, 0 before: the end of a precopy's
    /// downtime, taken where the record arrives rather than when the migration thread gets round to it (a wake-up that
    /// changes nothing for the guest, which the destination starts on its own).
    /// </summary>
    public long CompleteAt => Interlocked.Read(ref completeAt);

    /// <summary>Timestamp (Stopwatch) of the destination's PostcopyRunning, 0 before.</summary>
    public long PostcopyRunningAt => Interlocked.Read(ref postcopyRunningAt);

    /// <summary>
    /// What the destination's PostcopyRunning said: its host's boot id and since when (monotonic ns) its vCPUs run;
    /// null before, or when the record carried nothing.
    /// </summary>
    public (Guid BootId, long RunningSinceNanoseconds)? DestinationRunning { get; private set; }

    /// <summary>
    /// Set when PostcopyRunning has arrived: the guest runs on the destination. A waiter sleeps at once (no spinning):
    /// until then the CPUs are the destination's, which is starting its vCPU threads.
    /// </summary>
    public ManualResetEventSlim RunningReported { get; } = new(initialState: false, spinCount: 0);

    /// <summary>
    /// The token from PostcopyAdviseAccepted when the destination takes a postcopy preempt channel; null when it
    /// does not (its postcopy-preempt capability is off, or the source did not ask).
    /// </summary>
    public byte[]? PreemptToken { get; private set; }

    /// <summary>PostcopyAdviseAccepted carried the shared-memory bit: the push goes through the ring offered.</summary>
    public bool SharedRingAccepted { get; private set; }

    /// <summary>PostcopyDiscarded said the ring arrived there and is mapped: the push may go through it.</summary>
    public bool SharedRingAttached { get; private set; }

    /// <summary>Why the return path ended (the connection broke or closed), or null while it is open.</summary>
    public string? ClosedReason => closedReason;

    /// <summary>
    /// The exception that ended the reader: a <see cref="MigrationStreamException"/> for anything the destination can
    /// send. (The reader turns every exception into a closed return path; the fuzzing harness checks which it was.)
    /// </summary>
    public Exception? ClosedBy { get; private set; }

    private volatile string? closedReason;

    private long postcopyRunningAt;
    private long completeAt;

    public bool TryTake(out ReturnMessage message) => messages.TryTake(out message!);

    /// <summary>Waits for a message of <paramref name="type"/>; an Error message or a closed path fails the migration.</summary>
    public ReturnMessage Expect(RecordType type, TimeSpan timeout, Func<bool> cancelled)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (cancelled())
            {
                throw new OperationCanceledException();
            }

            TimeSpan left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                throw new MigrationFailedException($"the destination did not answer within {timeout.TotalSeconds:F0} s (waiting for {type})");
            }

            if (messages.TryTake(out ReturnMessage? message, left < TimeSpan.FromMilliseconds(100) ? left : TimeSpan.FromMilliseconds(100)))
            {
                if (message.Type == type)
                {
                    return message;
                }

                Fail(message);
            }
        }
    }

    /// <summary>Turns an unexpected message into the failure it means.</summary>
    public static void Fail(ReturnMessage message)
    {
        throw message.Type switch
        {
            RecordType.Error => new MigrationFailedException($"the destination failed: {message.Text}"),
            ReturnMessage.Closed => new MigrationFailedException($"the migration connection broke: {message.Text}"),
            _ => new MigrationFailedException($"protocol error: unexpected {message.Type} on the return path"),
        };
    }

    private void Loop()
    {
        try
        {
            while (true)
            {
                Record record = reader.Read();
                PayloadReader payload = record.Reader();
                ReturnMessage message = record.Type switch
                {
                    RecordType.Error => new ReturnMessage(record.Type, Text: PeerText.Message(payload.String())),
                    RecordType.PageRequest => new ReturnMessage(record.Type, Block: payload.U16(), Offset: payload.U64(), Length: payload.U64()),
                    RecordType.SetupAccepted or RecordType.Complete => new ReturnMessage(record.Type),
                    RecordType.PostcopyDiscarded => ReadDiscarded(payload),
                    RecordType.PostcopyAdviseAccepted => ReadAdviseAccepted(payload),
                    RecordType.PostcopyRunning => ReadRunning(payload),
                    RecordType.PostcopyReceivedBitmap => ReadReceivedBitmap(payload),
                    RecordType.PostcopyResumeReady => ReadResumeReady(payload),
                    _ => new ReturnMessage(RecordType.Error, Text: $"unexpected {record.Type} record on the return path"),
                };
                if (message.Type == RecordType.PageRequest && PageRequestHandler is { } serve)
                {
                    serve(message);
                    continue;
                }

                if (message.Type == RecordType.Complete)
                {
                    Interlocked.CompareExchange(ref completeAt, System.Diagnostics.Stopwatch.GetTimestamp(), 0);
                }

                if (message.Type == RecordType.PostcopyRunning)
                {
                    Interlocked.Exchange(ref postcopyRunningAt, System.Diagnostics.Stopwatch.GetTimestamp());
                    RunningReported.Set();
                }

                if (messages.Count >= MaxQueued)
                {
                    throw new MigrationStreamException($"protocol error: the destination sent more than {MaxQueued} return-path records the source has not asked for");
                }

                messages.Add(message);
                Arrived.Release();
            }
        }
        catch (Exception e)
        {
            if (e.Message.StartsWith("protocol error", StringComparison.Ordinal))
            {
                // The destination is misbehaving, not gone: end the connection so a write blocked on it fails too.
                abort();
            }

            ClosedBy = e;
            closedReason = e.Message;
            messages.Add(new ReturnMessage(ReturnMessage.Closed, Text: e.Message));
            Arrived.Release();
        }
    }

    /// <summary>PostcopyRunning: empty, or the destination's boot id (16 bytes) and the time its vCPUs run since (u64 ns).</summary>
    private ReturnMessage ReadRunning(PayloadReader payload)
    {
        if (payload.Remaining > 0)
        {
            var bootId = new Guid(payload.Bytes(16));
            long runningSince = (long)payload.U64();
            DestinationRunning = (bootId, runningSince);
        }

        payload.End();
        return new ReturnMessage(RecordType.PostcopyRunning);
    }

    /// <summary>PostcopyReceivedBitmap (recovery): one stretch of a block's received bitmap, checked for shape here.</summary>
    private static ReturnMessage ReadReceivedBitmap(PayloadReader payload)
    {
        (int block, ulong first, uint count, byte[] bits) = ReceivedBitmapRecord.Read(payload);
        return new ReturnMessage(RecordType.PostcopyReceivedBitmap, Block: block, Offset: first, Length: count, Bits: bits);
    }

    /// <summary>PostcopyResumeReady (recovery): u16, the number of blocks whose bitmaps were sent.</summary>
    private static ReturnMessage ReadResumeReady(PayloadReader payload)
    {
        int blocks = payload.U16();
        payload.End();
        return new ReturnMessage(RecordType.PostcopyResumeReady, Block: blocks);
    }

    /// <summary>PostcopyDiscarded: empty, or u32 flags (bit 0: the shared ring is attached there).</summary>
    private ReturnMessage ReadDiscarded(PayloadReader payload)
    {
        if (payload.Remaining > 0)
        {
            uint flags = payload.U32();
            if ((flags & ~1u) != 0)
            {
                return new ReturnMessage(RecordType.Error, Text: $"protocol error: PostcopyDiscarded flags 0x{flags:x} include bits this version does not know");
            }

            SharedRingAttached = flags == 1;
        }

        payload.End();
        return new ReturnMessage(RecordType.PostcopyDiscarded);
    }

    /// <summary>
    /// PostcopyAdviseAccepted: empty, or u32 flags and, with the preempt flag, the channel's 16-byte token. The
    /// shared-memory flag only comes with the preempt flag (the ring travels with the channel).
    /// </summary>
    private ReturnMessage ReadAdviseAccepted(PayloadReader payload)
    {
        if (payload.Remaining > 0)
        {
            uint flags = payload.U32();
            if ((flags & ~(PostcopyAdviseFlags.Preempt | PostcopyAdviseFlags.SharedMemory)) != 0
                || flags == PostcopyAdviseFlags.SharedMemory)
            {
                return new ReturnMessage(RecordType.Error, Text: $"protocol error: PostcopyAdviseAccepted flags 0x{flags:x} include bits this version does not know");
            }

            if ((flags & PostcopyAdviseFlags.Preempt) != 0)
            {
                PreemptToken = payload.Bytes(16).ToArray();
            }

            SharedRingAccepted = (flags & PostcopyAdviseFlags.SharedMemory) != 0;
        }

        payload.End();
        return new ReturnMessage(RecordType.PostcopyAdviseAccepted);
    }

    public void Dispose()
    {
        thread.Join(TimeSpan.FromSeconds(5));
    }
}

/// <summary>One message from the destination.</summary>
public sealed record ReturnMessage(RecordType Type, string? Text = null, int Block = 0, ulong Offset = 0, ulong Length = 0, byte[]? Bits = null)
{
    /// <summary>Pseudo-type: the return path ended (connection closed or corrupt).</summary>
    public const RecordType Closed = (RecordType)0xFF;
}
