using System.Collections.Concurrent;
using Vmm.Migration.Stream;

namespace Vmm.Migration.Postcopy;

/// <summary>
/// The destination's side of the return path, shared by the receive thread and the fault thread: every record is
/// written and flushed whole under one lock, so a page request is on the wire as soon as it is made.
/// </summary>
/// <remarks>
/// Once postcopy listens, the receive thread must never block on the return path: it is what drains the main
/// stream. The source answers requests on its return-path reader, so a source blocked writing an answer into a full
/// main stream stops reading requests; a fault thread blocked on that full return path holds the lock; a receive
/// thread waiting for the lock (to say Running or Complete) stops draining the main stream — a deadlock seen here
/// about once in a few dozen postcopy runs. So the receive thread <see cref="Post"/>s: a small sender thread writes
/// those records, and the fault thread alone ever blocks on the socket. (PostcopyRunning is the exception: sent right
/// after the guest starts, when nothing can have filled the return path yet.)
/// </remarks>
public sealed class ReturnPathWriter(RecordWriter writer) : IDisposable
{
    private readonly object gate = new();
    private readonly BlockingCollection<Action<RecordWriter>> posted = [];
    private Thread? sender;

    /// <summary>Writes a record now, blocking while the socket is full (before LISTEN, or from the fault thread).</summary>
    public void Send(RecordType type)
    {
        lock (gate)
        {
            writer.Write(type, []);
            writer.Flush();
        }
    }

    /// <summary>
    /// PostcopyDiscarded (the pre-discard is done), with u32 flags: bit 0 says the source's shared ring arrived with the
    /// preempt channel and is mapped here, so the push may use it. Without the bit (the memfd did not come: something
    /// between the two ends that forwards bytes but not descriptors) the source pushes through the socket.
    /// </summary>
    public void SendDiscarded(bool sharedRingAttached)
    {
        lock (gate)
        {
            var payload = writer.Begin(RecordType.PostcopyDiscarded);
            payload.U32(sharedRingAttached ? 1u : 0u);
            payload.Commit();
            writer.Flush();
        }
    }

    /// <summary>
    /// PostcopyAdviseAccepted, with the preempt flag and the channel's token when this side takes one, and the
    /// shared-memory flag when it also takes the source's ring.
    /// </summary>
    public void SendAdviseAccepted(byte[]? preemptToken, bool sharedRing = false)
    {
        lock (gate)
        {
            var payload = writer.Begin(RecordType.PostcopyAdviseAccepted);
            payload.U32(preemptToken is null ? 0 : PostcopyAdviseFlags.Preempt | (sharedRing ? PostcopyAdviseFlags.SharedMemory : 0));
            if (preemptToken is not null)
            {
                payload.Bytes(preemptToken);
            }

            payload.Commit();
            writer.Flush();
        }
    }

    /// <summary>
    /// PostcopyRunning, now: this host's boot id and the monotonic time (ns) since which the vCPUs run, so a
    /// source on the same host can measure the downtime to that moment (<see cref="HostClock"/>).
    /// </summary>
    public void SendRunning(long runningSinceNanoseconds)
    {
        lock (gate)
        {
            var payload = writer.Begin(RecordType.PostcopyRunning);
            payload.Bytes(HostClock.BootId.ToByteArray());
            payload.U64((ulong)runningSinceNanoseconds);
            payload.Commit();
            writer.Flush();
        }
    }

    /// <summary>
    /// Postcopy recovery: every block's received bitmap (<see cref="ReceivedBitmapRecord"/>), then PostcopyResumeReady
    /// with the block count, written now, before any page flows on the new connection (so nothing can block them).
    /// </summary>
    public void SendReceivedBitmaps(IReadOnlyList<(Vmm.Ram.DirtyBitmap Received, ulong HostPages)> blocks)
    {
        lock (gate)
        {
            for (int index = 0; index < blocks.Count; index++)
            {
                ReceivedBitmapRecord.Write(writer, index, blocks[index].Received, blocks[index].HostPages);
            }

            var ready = writer.Begin(RecordType.PostcopyResumeReady);
            ready.U16((ushort)blocks.Count);
            ready.Commit();
            writer.Flush();
        }
    }

    /// <summary>Queues a record for the sender thread; never blocks the caller. Records posted keep their order.</summary>
    public void Post(RecordType type) => Post(w => w.Write(type, []));

    /// <summary>Fault thread: asks for a page now.</summary>
    public void RequestPage(int blockIndex, ulong offset, ulong length)
    {
        lock (gate)
        {
            WritePageRequest(writer, blockIndex, offset, length);
            writer.Flush();
        }
    }

    /// <summary>Receive thread: asks for a page through the sender thread.</summary>
    public void PostPageRequest(int blockIndex, ulong offset, ulong length) =>
        Post(w => WritePageRequest(w, blockIndex, offset, length));

    public void SendError(string message)
    {
        lock (gate)
        {
            var payload = writer.Begin(RecordType.Error);
            payload.String(message.Length > 4000 ? message[..4000] : message);
            payload.Commit();
            writer.Flush();
        }
    }

    /// <summary>Stops the sender thread once what was posted is written (or the connection is gone).</summary>
    public void Dispose()
    {
        posted.CompleteAdding();
        sender?.Join(TimeSpan.FromSeconds(5));
    }

    private static void WritePageRequest(RecordWriter w, int blockIndex, ulong offset, ulong length)
    {
        var payload = w.Begin(RecordType.PageRequest);
        payload.U16((ushort)blockIndex);
        payload.U64(offset);
        payload.U64(length);
        payload.Commit();
    }

    /// <summary>Starts the sender thread ahead of need (at ADVISE): starting a thread takes milliseconds here.</summary>
    public void StartSender()
    {
        lock (posted)
        {
            if (sender is null)
            {
                sender = new Thread(SendPosted) { IsBackground = true, Name = "return path sender" };
                sender.Start();
            }
        }
    }

    private void Post(Action<RecordWriter> write)
    {
        StartSender();
        posted.Add(write);
    }

    private void SendPosted()
    {
        try
        {
            foreach (Action<RecordWriter> write in posted.GetConsumingEnumerable())
            {
                lock (gate)
                {
                    write(writer);
                    writer.Flush();
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            // The connection is gone: the receive thread finds out on its next read and handles it.
        }
    }
}
