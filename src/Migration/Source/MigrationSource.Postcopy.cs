using System.Diagnostics;
using System.Runtime.CompilerServices;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Migration.Source;

/// <summary>
/// Postcopy on the source: the switchover (pre-discard while the guest runs, stop, late discards, state, Run), then
/// serving page requests ahead of everything while the background push sends the rest, until the destination has
/// every page. docs/postcopy.md describes the protocol.
/// </summary>
public sealed partial class MigrationSource
{
    /// <summary>The blocks, each block's push cursor and last request end: kept for a recovery to go on from.</summary>
    private IReadOnlyList<RamBlock>? postcopyBlocks;
    private ulong[]? pushCursors;
    private ulong[]? pushRequestedUpTo;

    /// <summary>When the guest stopped here for the switchover (Stopwatch): the downtime's start.</summary>
    private long postcopyStoppedAt;


    /// <summary>
    /// The postcopy switchover and what follows: discard on the destination, while the guest still runs here, every
    /// page already stale there (<see cref="PreDiscard"/>); stop the guest, send the discards of pages dirtied since,
    /// Listen, the state, Run; then serve page requests (on the return-path thread, ahead of everything) while
    /// pushing the rest in the background from wherever the guest last faulted, until the destination has every page.
    /// </summary>
    private void RunPostcopy(IReadOnlyList<RamBlock> blocks, ReturnPath returnPath)
    {
        RecordWriter writer = connection!.Writer;

        // No hints after the switchover: the destination runs the guest from here on. Pages put off on a hint are not
        // valid on the destination: they join the discard set, so a fault there fetches them, and the push sends
        // them like every other dirty page.
        CloseHintRequest();
        ReturnHintedPages();

        // Per block: where the push goes on (the push thread's own), and the end of the last page requested (written by
        // whoever serves the request, taken by the push, which goes on from there: a cheap prefetch of what follows).
        var cursors = pushCursors = new ulong[blocks.Count];
        ulong[] requestedUpTo = pushRequestedUpTo = [.. blocks.Select(_ => NoRequest)];
        postcopyBlocks = blocks;

        // From the pre-discard on the destination's memory is registered with userfaultfd, so a touch there (a
        // monitor reading guest memory) can send a page request before the guest runs there. Those wait here and
        // are served once Run is out (the guest here is stopped then, its memory final); later ones are served at
        // once, on the return-path thread.
        var early = new List<ReturnMessage>();
        bool serving = false;
        returnPath.PageRequestHandler = request =>
        {
            lock (early)
            {
                if (!serving)
                {
                    // Only a touch of registered memory on the destination makes these (a monitor read): a handful.
                    // More is a destination misbehaving; the reader thread fails the migration, guest still here.
                    if (early.Count >= MaxEarlyRequests)
                    {
                        throw new MigrationStreamException($"protocol error: the destination sent more than {MaxEarlyRequests} page requests before the switchover");
                    }

                    early.Add(request);
                    return;
                }
            }

            ServeRequest(blocks, requestedUpTo, request);
        };

        DirtyBitmap[] discarded = PreDiscard(blocks, returnPath);
        if (ring is not null && !returnPath.SharedRingAttached)
        {
            log.Warning("postcopy: the destination did not get the shared-memory ring (is something between the two ends?); the push goes through the socket");
            ring.Dispose();
            ring = null;
        }

        // The preempt channel idles until the first answer: make sure it is still there before the guest moves, or a
        // channel lost during precopy would only be found after the switchover, with the guest stranded there.
        if (preempt is { IsClosed: true })
        {
            throw new MigrationFailedException("the postcopy preempt channel closed before the switchover");
        }

        long stoppedAt = postcopyStoppedAt = Stopwatch.GetTimestamp();
        machine.StopForMigration();
        guestStopped = true;
        long synced = Stopwatch.GetTimestamp();
        machine.SyncDirtyLog();
        zeroPages.Invalidate();
        long discardFrom = Stopwatch.GetTimestamp();

        ulong lateDiscards = 0;
        lock (writerGate)
        {
            for (int index = 0; index < blocks.Count; index++)
            {
                RamBlock block = blocks[index];
                RoundDirtyToHostPages(block);
                DirtyBitmap late = block.DirtyBitmap.Except(discarded[index]);
                lateDiscards += late.CountSet();
                DiscardRecord.Write(writer, index, DirtyRanges(late, block));
            }

            writer.Write(RecordType.PostcopyListen, []);
            long stateFrom = Stopwatch.GetTimestamp();
            IReadOnlyList<StateSection> state = machine.SaveState();
            foreach (StateSection section in state)
            {
                section.Write(writer);
            }

            int firstTouch = SendFirstTouchPages(blocks, writer, state);

            // From the Run record on the guest belongs to the destination.
            switchedOver = true;
            StreamSeal.Write(writer, RecordType.PostcopyRun);
            writer.Flush();
            long runSent = Stopwatch.GetTimestamp();
            log.Debug(
                "postcopy switchover (source): stop {Stop:F0} us, dirty sync {Sync:F0} us, discard set of {Late} pages dirtied since the pre-discard {Discard:F0} us, state, {FirstTouch} first-touch pages and run {State:F0} us",
                Stopwatch.GetElapsedTime(stoppedAt, synced).TotalMicroseconds,
                Stopwatch.GetElapsedTime(synced, discardFrom).TotalMicroseconds,
                lateDiscards,
                Stopwatch.GetElapsedTime(discardFrom, stateFrom).TotalMicroseconds,
                firstTouch,
                Stopwatch.GetElapsedTime(stateFrom, runSent).TotalMicroseconds);
        }

        ReturnMessage[] waiting;
        lock (early)
        {
            serving = true;
            waiting = [.. early];
        }

        foreach (ReturnMessage request in waiting)
        {
            ServeRequest(blocks, requestedUpTo, request);
        }

        ulong left = (ulong)blocks.Sum(b => (long)b.DirtyBitmap.CountSet());
        Update(s => s with { Status = MigrationStatus.PostcopyActive, RemainingBytes = left * PageSize });
        StatusChanged?.Invoke(MigrationStatus.PostcopyActive);
        log.Information("migration to {Uri}: postcopy, {Pages} pages left to move", uri.Text, left);

        // With the answers on their own connection the push may queue much more in the main one: fewer, larger writes,
        // and far fewer times the push thread blocks on a full socket and must be woken. Without it, an answer waits
        // behind whatever the push queued, so the push stays small.
        ulong pushBatchBytes = 64 * 1024;
        if (preempt is not null)
        {
            connection!.EnlargeSendBuffer(4 << 20);
            pushBatchBytes = 1 << 20;
        }

        // The push starts once the guest runs there (or after 5 ms): pushing while the destination's vCPU thread waits
        // for a CPU would only delay it, and that delay is downtime.
        returnPath.RunningReported.Wait(TimeSpan.FromMilliseconds(5));

        // Through the shared ring when there is one: a full ring waits for the destination, which may go away.
        // Mostly-zero pages go as sparse records on the stream, the rest through the ring (PageRunWriter).
        pushRuns = new PageRunWriter(writer, ring, () => returnPath.ClosedReason, sparse: capabilities.SparsePages);
        PushUntilComplete(returnPath, pushBatchBytes);
    }

    /// <summary>
    /// The background push, after the switchover or after a recovery: runs of dirty pages from each block's cursor
    /// (moved by the requests served meanwhile on the return-path thread), then PostcopyPushDone, then waiting for the
    /// destination's Complete. Any failure throws: the caller pauses the migration.
    /// </summary>
    private void PushUntilComplete(ReturnPath returnPath, ulong pushBatchBytes)
    {
        RecordWriter writer = connection!.Writer;
        PageRunWriter runs = pushRuns!;
        bool pushDone = false;
        while (true)
        {
            while (returnPath.TryTake(out ReturnMessage message))
            {
                switch (message.Type)
                {
                    case RecordType.PostcopyRunning:
                        break;
                    case RecordType.Complete:
                        FinishPostcopy(returnPath);
                        return;
                    default:
                        ReturnPath.Fail(message);
                        break;
                }
            }

            if (!pushDone && PushSome(postcopyBlocks!, pushCursors!, pushRequestedUpTo!, runs, pushBatchBytes))
            {
                // Outside the writer lock: request answers never wait behind the bandwidth cap.
                Throttle((ulong)writer.BytesWritten + runs.OffStreamBytes);
            }
            else if (!pushDone)
            {
                pushDone = true;
                lock (writerGate)
                {
                    writer.Write(RecordType.PostcopyPushDone, []);
                    writer.Flush();
                }
            }

            if (pushDone)
            {
                returnPath.Arrived.Wait(TimeSpan.FromMilliseconds(100));
            }
        }
    }

    /// <summary>
    /// In the downtime, after the state: the pages the vCPUs touch first (next instruction, top of the stack) when the
    /// destination does not have them. Otherwise the guest's very first instruction there faults, and that request's
    /// round trip, while every thread on both sides is still waking up, took 0.3–2 ms here in every run; a page or two
    /// more in the switchover costs microseconds. Huge pages are left to the fault (2 MiB would cost more than it).
    /// </summary>
    private int SendFirstTouchPages(IReadOnlyList<RamBlock> blocks, RecordWriter writer, IReadOnlyList<StateSection> state)
    {
        int sent = 0;
        foreach (ulong address in machine.FirstTouchAddresses(state))
        {
            int index = -1;
            for (int i = 0; i < blocks.Count && index < 0; i++)
            {
                index = blocks[i].ContainsGuestAddress(address) ? i : -1;
            }

            if (index < 0 || blocks[index].PageSize != PageSize)
            {
                continue;
            }

            RamBlock block = blocks[index];
            ulong page = (address - block.GuestBase) / PageSize;
            if (block.DirtyBitmap.TestAndClear(page))
            {
                PageRecord.Write(writer, index, page * PageSize, block.GetSpan(page * PageSize, (int)PageSize));
                sent++;
            }
        }

        return sent;
    }

    /// <summary>
    /// A shared ring for the postcopy push, when this side may offer one (postcopy-shared-memory and postcopy-preempt
    /// on, a Unix socket: both ends on this host); null otherwise, or if the memfd cannot be had (then the push uses
    /// the socket, as without the capability).
    /// </summary>
    private SharedPageRing? OfferSharedRing()
    {
        if (!capabilities.PostcopyPreempt || !capabilities.PostcopySharedMemory || uri.EndPoint is not System.Net.Sockets.UnixDomainSocketEndPoint)
        {
            return null;
        }

        try
        {
            return SharedPageRing.Create();
        }
        catch (Linux.LinuxException e)
        {
            log.Warning("postcopy: no shared-memory ring for the push ({Message}); it goes through the socket", e.Message);
            return null;
        }
    }

    /// <summary>
    /// Answers one page request — always, even for a page believed clean or already sent (seed 002) — on the preempt
    /// channel when there is one, else on the main stream between two push batches.
    /// </summary>
    private void ServeRequest(IReadOnlyList<RamBlock> blocks, ulong[] requestedUpTo, ReturnMessage request)
    {
        if (request.Block >= blocks.Count)
        {
            throw new MigrationStreamException($"protocol error: page request for block index {request.Block}");
        }

        RamBlock block = blocks[request.Block];
        ulong pageSize = block.PageSize;
        ulong start = request.Offset / pageSize * pageSize;

        // A fault needs one host page: a longer request is clamped to the host page it starts in (never a whole
        // block for 31 bytes of request), and an offset near 2^64 cannot wrap.
        ulong end = start >= block.UsedLength ? start : Math.Min(start + pageSize, block.UsedLength);
        (object gate, RecordWriter writer, ZeroPageDetector zeros) = preempt is { } channel
            ? (channel.Gate, channel.Writer, channel.ZeroPages)
            : (writerGate, connection!.Writer, zeroPages);
        lock (gate)
        {
            for (ulong offset = start; offset < end; offset += pageSize)
            {
                block.DirtyBitmap.ClearRange(offset / PageSize, pageSize / PageSize);
                if (zeros.IsZero(block, offset / PageSize, pageSize / PageSize))
                {
                    PageRecord.WriteZeros(writer, request.Block, offset, pageSize);
                }
                else
                {
                    PageRecord.WriteData(writer, request.Block, offset, block.GetSpan(offset, (int)pageSize));
                }
            }

            writer.Flush();
            preempt?.CountPages(end > start ? (end - start) / PageSize : 0);

            // The guest tends to touch what follows: the push goes on from here (a cheap prefetch).
            Volatile.Write(ref requestedUpTo[request.Block], end / PageSize);
        }

        Interlocked.Increment(ref postcopyRequests);
    }

    /// <summary>
    /// Sends the next dirty host pages from the block's cursor on, as runs (<see cref="PageRunWriter"/>): up to
    /// <paramref name="batchBytes"/> of data or 1024 pages, whichever comes first, so the writer lock is never held
    /// long against a request answered on the main stream. The page cap holds for zero pages too: they cost little to
    /// send but not to place, and the destination's receive thread looks for answers only between records. False when
    /// no dirty page is left anywhere.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private bool PushSome(IReadOnlyList<RamBlock> blocks, ulong[] cursors, ulong[] requestedUpTo, PageRunWriter runs, ulong batchBytes)
    {
        const ulong BatchPages = 1024;
        lock (writerGate)
        {
            RecordWriter writer = connection!.Writer;
            for (int index = 0; index < blocks.Count; index++)
            {
                RamBlock block = blocks[index];
                ulong pages = block.UsedLength / PageSize;
                ulong hostPages = block.PageSize / PageSize;
                ulong writtenBefore = (ulong)writer.BytesWritten + runs.OffStreamBytes;
                ulong sent = 0;
                while ((ulong)writer.BytesWritten + runs.OffStreamBytes - writtenBefore < batchBytes && sent < BatchPages)
                {
                    ulong requested = Interlocked.Exchange(ref requestedUpTo[index], NoRequest);
                    if (requested != NoRequest)
                    {
                        cursors[index] = requested;
                    }

                    if (!block.DirtyBitmap.TryFindNextSet(cursors[index], out ulong page) || page >= pages)
                    {
                        if (cursors[index] == 0 || !block.DirtyBitmap.TryFindNextSet(0, out page) || page >= pages)
                        {
                            break;
                        }
                    }

                    ulong first = page / hostPages * hostPages;
                    block.DirtyBitmap.ClearRange(first, hostPages);
                    runs.Add(index, block, first * PageSize, block.PageSize, zeroPages.IsZero(block, first, hostPages));
                    cursors[index] = first + hostPages;
                    sent += hostPages;
                }

                if (sent > 0)
                {
                    runs.Flush();
                    writer.Flush();
                    ulong bytes = sent * PageSize;
                    Update(s => s with { TransferredBytes = TransferredSoFar(), RemainingBytes = s.RemainingBytes > bytes ? s.RemainingBytes - bytes : 0 });
                    return true;
                }
            }
        }

        return false;
    }

    private void FinishPostcopy(ReturnPath returnPath)
    {
        // After a recovery the switchover's downtime was measured on the first connection.
        long switchoverUs = switchoverDowntimeUs ?? Downtime(returnPath, postcopyStoppedAt, returnPath.PostcopyRunningAt);
        machine.StopDirtyLogging();
        loggingStarted = false;
        machine.CompleteOutgoingMigration();
        totalClock.Stop();
        Update(s => s with
        {
            Status = MigrationStatus.Completed,
            TotalTimeMs = totalClock.ElapsedMilliseconds,
            DowntimeMs = switchoverUs / 1000,
            DowntimeUs = switchoverUs,
            PostcopyRequests = (ulong)Interlocked.Read(ref postcopyRequests),
            PostcopyPreemptPages = earlierPreemptPages + (ulong)(preempt?.PagesSent ?? 0),
            PostcopySharedPages = earlierSharedPages + ((pushRuns?.SharedBytes ?? 0) / PageSize),
            SparsePages = (ulong)Interlocked.Read(ref precopySparsePages) + earlierSparsePages + (pushRuns?.SparsePages ?? 0),
            TransferredBytes = TransferredSoFar(),
            RemainingBytes = 0,
        });
        log.Information(
            "postcopy to {Uri} completed in {Total} ms: downtime {Downtime} us, {Requests} page requests served, {Sparse} pages pushed as sparse pages",
            uri.Text, totalClock.ElapsedMilliseconds, switchoverUs, Interlocked.Read(ref postcopyRequests), pushRuns?.SparsePages ?? 0);
        StatusChanged?.Invoke(MigrationStatus.Completed);
    }

    /// <summary>
    /// Postcopy downtime in µs: from the vCPU stop here to the vCPUs running there, on the host's monotonic clock when
    /// both ends run on one host (same boot id); otherwise, or if the destination did not say, to the arrival of its
    /// PostcopyRunning here — an upper bound that adds the answer's trip and this side's wake-up.
    /// </summary>
    private long Downtime(ReturnPath returnPath, long stoppedAt, long runningAt)
    {
        long roundTripUs = runningAt == 0 ? 0 : (long)((runningAt - stoppedAt) * 1e6 / Stopwatch.Frequency);
        if (returnPath.DestinationRunning is not { } running || running.BootId != HostClock.BootId || running.BootId == Guid.Empty)
        {
            return roundTripUs;
        }

        long stoppedNs = HostClock.ToNanoseconds(stoppedAt);
        long guestUs = (running.RunningSinceNanoseconds - stoppedNs) / 1000;
        log.Debug("postcopy downtime: {Guest} us to the destination's vCPUs running, {RoundTrip} us to its answer here", guestUs, roundTripUs);
        return guestUs > 0 && guestUs <= roundTripUs ? guestUs : roundTripUs;
    }

    /// <summary>
    /// Before the guest stops: sends the discard set as it is now (every page dirty here is stale or missing on the
    /// destination), then PostcopyDiscardSync, and waits for PostcopyDiscarded (which also says whether the shared
    /// ring arrived there). Freeing that memory takes the
    /// destination milliseconds; done here it overlaps the running guest instead of adding to the downtime. Returns
    /// what was discarded, per block: after the stop only pages outside it need discarding. No Page record may be
    /// sent from here to the stop — it would land in a range the destination now counts as missing.
    /// </summary>
    private DirtyBitmap[] PreDiscard(IReadOnlyList<RamBlock> blocks, ReturnPath returnPath)
    {
        RecordWriter writer = connection!.Writer;
        long from = Stopwatch.GetTimestamp();
        machine.SyncDirtyLog();
        var discarded = new DirtyBitmap[blocks.Count];
        ulong pages = 0;
        for (int index = 0; index < blocks.Count; index++)
        {
            RamBlock block = blocks[index];
            RoundDirtyToHostPages(block);
            discarded[index] = block.DirtyBitmap.Except(null);
            pages += discarded[index].CountSet();
            DiscardRecord.Write(writer, index, DirtyRanges(discarded[index], block));
        }

        writer.Write(RecordType.PostcopyDiscardSync, []);
        writer.Flush();
        returnPath.Expect(RecordType.PostcopyDiscarded, TimeSpan.FromSeconds(30), () => cancelRequested);
        log.Debug("postcopy pre-discard of {Pages} pages acknowledged in {Us:F0} us, guest running", pages, Stopwatch.GetElapsedTime(from).TotalMicroseconds);
        return discarded;
    }

    /// <summary>Huge pages move whole: a 4 KiB dirty bit makes its whole host page dirty.</summary>
    private static void RoundDirtyToHostPages(RamBlock block)
    {
        ulong hostPages = block.PageSize / PageSize;
        if (hostPages == 1)
        {
            return;
        }

        ulong next = 0;
        while (block.DirtyBitmap.TryFindNextSet(next, out ulong page))
        {
            ulong first = page / hostPages * hostPages;
            block.DirtyBitmap.SetRange(first, hostPages);
            next = first + hostPages;
        }
    }

    /// <summary>A bitmap of <paramref name="block"/> as byte ranges (runs of set bits), within the used length.</summary>
    private static List<(ulong Offset, ulong Length)> DirtyRanges(DirtyBitmap bitmap, RamBlock block)
    {
        var ranges = new List<(ulong, ulong)>();
        ulong pages = block.UsedLength / PageSize;
        ulong next = 0;
        while (bitmap.TryFindNextSet(next, out ulong first) && first < pages)
        {
            ulong end = first + 1;
            while (end < pages && bitmap.IsSet(end))
            {
                end++;
            }

            ranges.Add((first * PageSize, (end - first) * PageSize));
            next = end;
        }

        return ranges;
    }
}
