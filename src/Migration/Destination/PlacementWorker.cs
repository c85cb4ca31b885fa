using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Serilog;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;

namespace Vmm.Migration.Destination;

/// <summary>
/// A second thread that places the postcopy push's sparse records, so the receive thread can read and expand the next
/// record while this one's pages are placed. Placing is the destination's heaviest work in a push: a UFFDIO_COPY
/// allocates and fills a page, about 1.1 µs per 4 KiB page here, 70+ ms per 256 MiB on one thread, while reading and
/// expanding sparse records costs a tenth of that. The receive thread hands a record over only when one of the
/// worker's few buffers is free, and otherwise places it itself: when this thread falls behind, both place.
/// </summary>
/// <remarks>
/// Placement from several threads is already the rule (the preempt channel's answers): a page is placed at most once,
/// and whichever thread places the last missing page completes the migration. What this adds: the pages of a record
/// handed over are not placed yet when the receive thread reads on, so before PostcopyPushDone (which recounts what is
/// missing and asks for it) the receive thread <see cref="Drain"/>s this one. A placement failure here is kept and
/// thrown on the receive thread at its next hand-over or drain, where every other failure of the stream is handled.
/// </remarks>
internal sealed class PlacementWorker : IDisposable
{
    /// <summary>Records in hand at once: enough to keep this thread busy while the receive thread reads on.</summary>
    private const int Buffers = 4;

    private readonly PostcopyDestination destination;
    private readonly ILogger log;
    private readonly ConcurrentQueue<SparseExpansionBuffer> free = new();
    private readonly BlockingCollection<Work> work = new();
    private readonly object gate = new();
    private readonly Thread thread;
    private int pending;
    private volatile Exception? failure;

    public PlacementWorker(PostcopyDestination destination, ILogger log)
    {
        this.destination = destination;
        this.log = log;
        for (int i = 0; i < Buffers; i++)
        {
            free.Enqueue(new SparseExpansionBuffer());
        }

        thread = new Thread(Run) { IsBackground = true, Name = "postcopy placer" };
        thread.Start();
    }

    /// <summary>
    /// Receive thread: expands a sparse record into a free buffer of this worker and queues it for placement; false
    /// when every buffer is in use (the caller places the record itself). A malformed record throws here.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public bool TryPost(PageRecord.Parsed record)
    {
        ThrowIfFailed();
        if (!free.TryDequeue(out SparseExpansionBuffer? buffer))
        {
            return false;
        }

        try
        {
            destination.RequireWholePages(record.BlockIndex, record.Offset, record.Length);
            buffer.Expand(record.Data, record.Length / SparsePageEncoding.PageSize);
        }
        catch
        {
            free.Enqueue(buffer);
            throw;
        }

        lock (gate)
        {
            pending++;
        }

        work.Add(new Work(record.BlockIndex, record.Offset, record.Length, buffer));
        return true;
    }

    /// <summary>Receive thread: waits until every record handed over is placed; throws what failed on the way.</summary>
    public void Drain()
    {
        lock (gate)
        {
            while (pending > 0)
            {
                Monitor.Wait(gate);
            }
        }

        ThrowIfFailed();
    }

    private void ThrowIfFailed()
    {
        if (failure is { } e)
        {
            throw new IOException($"postcopy placement failed: {e.Message}", e);
        }
    }

    private void Run()
    {
        foreach (Work item in work.GetConsumingEnumerable())
        {
            try
            {
                if (failure is null)
                {
                    destination.Place(item.BlockIndex, item.Offset, item.Length, zero: false, item.Buffer.Pages);
                }
            }
            catch (Exception e)
            {
                // Never out of the thread (that would end the process and the guest with it): the receive thread throws it.
                log.Debug("postcopy placer: {Message}", e.Message);
                failure ??= e;
            }
            finally
            {
                item.Buffer.Reset();
                free.Enqueue(item.Buffer);
                lock (gate)
                {
                    if (--pending == 0)
                    {
                        Monitor.PulseAll(gate);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Places what is queued and stops; true once the thread has ended (nothing is placed from here on), false if it
    /// did not within 5 s (then the caller must not free what placement uses).
    /// </summary>
    public bool Stop()
    {
        work.CompleteAdding();
        return Environment.CurrentManagedThreadId == thread.ManagedThreadId || thread.Join(TimeSpan.FromSeconds(5));
    }

    public void Dispose()
    {
        if (Stop())
        {
            work.Dispose();
        }
    }

    private sealed record Work(int BlockIndex, ulong Offset, ulong Length, SparseExpansionBuffer Buffer);
}
