using System.Diagnostics;
using System.Runtime.CompilerServices;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Migration.Source;

/// <summary>
/// Precopy, the first phase of every outgoing migration: every page once, then the pages dirtied meanwhile, pass
/// after pass, until the rest fits the downtime limit (then <see cref="CompletePrecopy"/>: stop, last pages, state,
/// End) or postcopy is asked for (then <see cref="RunPostcopy"/>). Free-page hints put pages off during the passes,
/// never drop them.
/// </summary>
public sealed partial class MigrationSource
{
    /// <summary>
    /// The live passes. Returns when the estimated rest fits the downtime limit, the pass limit is reached, or postcopy
    /// was asked for; the guest still runs here.
    /// </summary>
    private void RunPrecopy(IReadOnlyList<RamBlock> blocks, ReturnPath returnPath)
    {
        MigrationConnection connection = this.connection!;

        if (capabilities.Xbzrle)
        {
            var sender = xbzrle = new XbzrlePageSender(new XbzrleCache(parameters.XbzrleCacheSize), connection.Writer);
            Update(s => s with { XbzrleCacheSize = sender.CacheSize });
        }

        machine.StartDirtyLogging();
        loggingStarted = true;
        foreach (RamBlock block in blocks)
        {
            block.DirtyBitmap.SetRange(0, block.UsedLength / PageSize);
        }

        ulong total = (ulong)blocks.Sum(b => (long)b.UsedLength);
        Update(s => s with { Status = MigrationStatus.Active, SetupTimeMs = totalClock.ElapsedMilliseconds, TotalBytes = total, RemainingBytes = total });
        StatusChanged?.Invoke(MigrationStatus.Active);
        log.Information("migration to {Uri}: layout accepted, precopy of {Total} bytes", uri.Text, total);
        throttleClock.Start();

        // Only now, with every page marked dirty: a hint taken earlier would be undone by the marking.
        OpenHintRequest(blocks);

        int pass = 0;
        while (true)
        {
            pass++;
            var passClock = Stopwatch.StartNew();
            ulong bytesBefore = (ulong)connection.Writer.BytesWritten;
            ulong savedBefore = (xbzrle?.SavedBytes ?? 0) + precopySparseSavedBytes;
            SendDirtyPages(blocks, returnPath);
            WritePassEnd(pass);
            connection.Writer.Flush();

            machine.SyncDirtyLog();
            hintSkips?.ForgetRedirtied();
            ulong dirtyPages = (ulong)blocks.Sum(b => (long)b.DirtyBitmap.CountSet());
            double seconds = Math.Max(passClock.Elapsed.TotalSeconds, 1e-6);
            // The rate of pages moved, as if each had gone whole: with xbzrle or sparse pages the stream carries far
            // fewer bytes than the pages it moves, and the remaining dirty bytes are divided by this rate.
            ulong saved = (xbzrle?.SavedBytes ?? 0) + precopySparseSavedBytes - savedBefore;
            double bytesPerSecond = ((ulong)connection.Writer.BytesWritten - bytesBefore + saved) / seconds;
            ulong remaining = dirtyPages * PageSize;
            long expectedDowntimeMs = (long)(remaining / Math.Max(bytesPerSecond, 1) * 1000);
            Update(s => s with
            {
                Passes = pass,
                DirtySyncCount = s.DirtySyncCount + 1,
                RemainingBytes = remaining,
                ExpectedDowntimeMs = expectedDowntimeMs,
                DirtyPagesRate = (ulong)(dirtyPages / seconds),
                Mbps = bytesPerSecond * 8 / 1e6,
            });
            PassCompleted?.Invoke(pass);
            log.Debug("pass {Pass}: {Dirty} pages dirty, {Rate:F0} MB/s, expected downtime {Downtime} ms", pass, dirtyPages, bytesPerSecond / 1e6, expectedDowntimeMs);
            CheckReturnPath(returnPath);
            if (postcopyRequested)
            {
                break;
            }

            if ((ulong)expectedDowntimeMs <= parameters.DowntimeLimitMs || pass >= parameters.MaxPasses)
            {
                // The guest is about to stop. Pages put off on a hint are still owed to the destination (nothing
                // may arrive there as silent zeros): send them in one more live pass rather than in the downtime.
                // The request is closed first, so the pass is the last one that can find them.
                CloseHintRequest();
                if (ReturnHintedPages() > 0)
                {
                    continue;
                }

                break;
            }
        }

    }

    /// <summary>
    /// The end of a precopy migration: stop the guest, send the last dirty pages and the state, End, and wait for the
    /// destination's Complete. From End on a failure no longer resumes the guest here (the destination may run it).
    /// </summary>
    private void CompletePrecopy(IReadOnlyList<RamBlock> blocks, ReturnPath returnPath)
    {
        MigrationConnection connection = this.connection!;

        // The last pages go out with the guest stopped, as fast as the destination takes them: let megabytes wait in
        // the kernel rather than the default ~200 KiB, so neither side blocks and wakes the other every few hundred
        // KiB (each wake-up can cost a millisecond on a busy host). Done before the stop: it is not downtime.
        connection.EnlargeSendBuffer(4 << 20);

        // Switchover: from here the guest is paused until the destination confirms or the migration fails.
        long stoppedAt = Stopwatch.GetTimestamp();
        machine.StopForMigration();
        guestStopped = true;
        machine.SyncDirtyLog();
        SendDirtyPages(blocks, returnPath);
        foreach (StateSection section in machine.SaveState())
        {
            section.Write(connection.Writer);
        }

        StreamSeal.Write(connection.Writer, RecordType.End);
        connection.Writer.Flush();

        // Once End is out the destination may already run the guest: from here a failure must not resume it here.
        endSent = true;
        returnPath.Expect(RecordType.Complete, TimeSpan.FromSeconds(60), () => false);
        long completeAt = returnPath.CompleteAt;
        TimeSpan downtime = Stopwatch.GetElapsedTime(stoppedAt, completeAt != 0 ? completeAt : Stopwatch.GetTimestamp());

        machine.StopDirtyLogging();
        loggingStarted = false;
        DropXbzrle(); // the cache's memory goes now, not when the controller drops this migration
        machine.CompleteOutgoingMigration();
        totalClock.Stop();
        Update(s => s with
        {
            Status = MigrationStatus.Completed,
            TotalTimeMs = totalClock.ElapsedMilliseconds,
            DowntimeMs = (long)downtime.TotalMilliseconds,
            DowntimeUs = (long)downtime.TotalMicroseconds,
            RemainingBytes = 0,
            SparsePages = (ulong)Interlocked.Read(ref precopySparsePages),
        });
        log.Information("migration to {Uri} completed in {Total} ms, downtime {Downtime} us", uri.Text, totalClock.ElapsedMilliseconds, (long)downtime.TotalMicroseconds);
        StatusChanged?.Invoke(MigrationStatus.Completed);
    }

    /// <summary>
    /// Sends every page whose dirty bit is set, clearing the bit first so a write during the copy is seen again.
    /// Consecutive pages go as runs (<see cref="PageRunWriter"/>); on anonymous memory a page never populated is known
    /// to be zero without reading it (<see cref="ZeroPageDetector"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private void SendDirtyPages(IReadOnlyList<RamBlock> blocks, ReturnPath returnPath)
    {
        RecordWriter writer = connection!.Writer;

        // With the vCPUs stopped guest memory holds still: it can go to the socket as it is, with no copy. Then, too,
        // mostly-zero pages go as sparse pages (with xbzrle on, only zero pages come here: the others go as deltas or
        // whole). Not in the live passes: a source that sends them faster than the destination writes them (a fresh
        // page costs it a fault either way) only moves that work into the downtime, as a backlog.
        var runs = new PageRunWriter(writer, stable: guestStopped, sparse: capabilities.SparsePages && xbzrle is null && guestStopped);

        // The guest may have populated pages since the last pass.
        zeroPages.Invalidate();
        ulong normal = 0;
        ulong zero = 0;
        ulong encoded = 0;
        for (int index = 0; index < blocks.Count; index++)
        {
            RamBlock block = blocks[index];
            DirtyBitmap dirty = block.DirtyBitmap;
            ulong pages = block.UsedLength / PageSize;
            ulong next = 0;
            while (dirty.TryFindNextSet(next, out ulong page) && page < pages)
            {
                next = page + 1;
                if (!dirty.TestAndClear(page))
                {
                    continue;
                }

                // A page in the xbzrle cache goes as a delta whatever it holds now (zeros too, then as an overflow or
                // a short delta): the zero test would only read it (and the page map) once more.
                bool cached = xbzrle?.Holds(index, page) == true;
                bool isZero = !cached && zeroPages.IsZero(block, page);
                if (xbzrle is not null && !isZero)
                {
                    // Each page alone, from the cache or a snapshot: never from a run read later out of guest memory.
                    if (xbzrle.Send(index, block, page, stable: guestStopped))
                    {
                        normal++;
                    }
                    else
                    {
                        encoded++;
                    }
                }
                else
                {
                    xbzrle?.Forget(index, page);
                    runs.Add(index, block, page * PageSize, PageSize, isZero);
                    if (isZero)
                    {
                        zero++;
                    }
                    else
                    {
                        normal++;
                    }
                }

                if (((normal + zero + encoded) & 1023) == 0)
                {
                    xbzrle?.Flush();
                    runs.Flush();
                    if (postcopyRequested && !guestStopped)
                    {
                        CountSparse(runs);
                        PublishProgress(normal, zero);
                        return;
                    }

                    ThrowIfCancelled();
                    CheckReturnPath(returnPath);
                    Throttle((ulong)writer.BytesWritten);
                    PublishProgress(normal, zero);
                    normal = zero = encoded = 0;
                }
            }

            xbzrle?.Flush();
            runs.Flush();
        }

        CountSparse(runs);
        PublishProgress(normal, zero);
    }

    /// <summary>A pass's sparse pages, for the statistics and the switchover estimate.</summary>
    private void CountSparse(PageRunWriter runs)
    {
        Interlocked.Add(ref precopySparsePages, (long)runs.SparsePages);
        precopySparseSavedBytes += runs.SparseSavedBytes;
    }

    /// <summary>Asks the guest for free-page hints, if the machine can; they go to <see cref="OnFreePageHint"/>.</summary>
    private void OpenHintRequest(IReadOnlyList<RamBlock> blocks)
    {
        if (machine is IFreePageHinting hinting)
        {
            hintSkips = new FreePageHintSkips(blocks);
            hintRequest = hinting.RequestFreePageHints(OnFreePageHint);
        }
    }

    /// <summary>Stops asking for hints; when it returns no hint is being applied and none will be.</summary>
    private void CloseHintRequest()
    {
        IDisposable? request = hintRequest;
        hintRequest = null;
        request?.Dispose();
    }

    /// <summary>On a vCPU thread: the guest reports a free range; its pages still waiting to be sent are put off.</summary>
    private void OnFreePageHint(ulong guestAddress, ulong length)
    {
        FreePageHintSkips skips = hintSkips!;
        ulong skipped = skips.Skip(guestAddress, length);

        // Read under the stats lock: the count only grows, so the last writer publishes the latest total.
        Update(s => s with { FreePageHintSkippedPages = skips.SkippedPages });
        log.Debug("free-page hint [0x{Address:x}, +0x{Length:x}): {Skipped} pages put off", guestAddress, length, skipped);
    }

    /// <summary>Puts every page a hint put off back into the dirty set (hints must be closed). Returns how many.</summary>
    private ulong ReturnHintedPages()
    {
        ulong returned = hintSkips?.ReturnToDirty() ?? 0;
        if (returned > 0)
        {
            log.Debug("{Pages} pages put off on free-page hints go back into the dirty set", returned);
        }

        return returned;
    }

    /// <summary>Ends the xbzrle cache's use and frees its memory; the statistics keep their last figures.</summary>
    private void DropXbzrle()
    {
        XbzrlePageSender? sender = xbzrle;
        xbzrle = null;
        sender?.Dispose();
    }

    private void PublishProgress(ulong normal, ulong zero) => Update(s => s with
    {
        NormalPages = s.NormalPages + normal,
        NormalBytes = s.NormalBytes + (normal * PageSize),
        DuplicatePages = s.DuplicatePages + zero,
        TransferredBytes = (ulong)connection!.Writer.BytesWritten,
        PagesPerSecond = (ulong)((s.NormalPages + s.DuplicatePages + normal + zero) / Math.Max(totalClock.Elapsed.TotalSeconds, 1e-6)),
        XbzrleBytes = xbzrle?.Bytes ?? s.XbzrleBytes,
        XbzrlePages = xbzrle?.Pages ?? s.XbzrlePages,
        XbzrleCacheMisses = xbzrle?.CacheMisses ?? s.XbzrleCacheMisses,
        XbzrleOverflows = xbzrle?.Overflows ?? s.XbzrleOverflows,
        XbzrleUnchanged = xbzrle?.Unchanged ?? s.XbzrleUnchanged,
    });

    private void WritePassEnd(int pass)
    {
        var payload = connection!.Writer.Begin(RecordType.PassEnd);
        payload.U32((uint)pass);
        payload.Commit();
    }
}
