using System.Diagnostics;
using Serilog;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Migration.Source;

/// <summary>
/// An outgoing migration, run on its own thread: connect, send the layout and wait for the destination to accept
/// it, then precopy (every page once, then the pages dirtied meanwhile, pass after pass) until the rest fits the
/// downtime limit; stop the guest, send the last dirty pages and the vCPU and device state, and wait for the
/// destination to confirm. Any failure before that confirmation leaves the guest running here.
/// </summary>
/// <remarks>
/// During the live passes the guest is asked for free-page hints (when the machine has the device,
/// <see cref="IFreePageHinting"/>): a hinted page still waiting to be sent is put off (<see cref="FreePageHintSkips"/>),
/// and before the guest stops for good every put-off page goes back into the dirty set, so a hint saves bandwidth
/// during precopy but never loses a page.
/// </remarks>
public sealed class MigrationSource
{
    private const ulong PageSize = DirtyBitmap.PageSize;

    /// <summary>No page request has come for a block since the push last looked.</summary>
    private const ulong NoRequest = ulong.MaxValue;

    /// <summary>Page requests that may wait for the switchover (made before the guest runs on the destination).</summary>
    private const int MaxEarlyRequests = 4096;

    /// <summary>The return path's reader, once there is one: why it closed may explain a failed write.</summary>
    private ReturnPath? returnPathReader;

    private readonly IMigratableMachine machine;
    private readonly MigrationUri uri;
    private readonly MigrationParameters parameters;
    private readonly MigrationCapabilities capabilities;
    private readonly ILogger log;
    private readonly Thread thread;
    private readonly TaskCompletionSource completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object statsGate = new();
    private readonly Stopwatch totalClock = new();
    private readonly Stopwatch throttleClock = new();

    private readonly object writerGate = new();
    private readonly ZeroPageDetector zeroPages = new();
    private MigrationConnection? connection;
    private PreemptChannel? preempt;
    private SharedPageRing? ring;
    private PageRunWriter? pushRuns;
    private volatile bool cancelRequested;
    private volatile bool postcopyRequested;
    private bool loggingStarted;
    private bool guestStopped;
    private bool switchedOver;
    private bool endSent;
    private long postcopyRequests;
    private FreePageHintSkips? hintSkips;
    private IDisposable? hintRequest;
    private MigrationStats stats = new() { Status = MigrationStatus.Setup };

    private MigrationSource(IMigratableMachine machine, MigrationUri uri, MigrationParameters parameters, MigrationCapabilities capabilities, ILogger log)
    {
        this.machine = machine;
        this.uri = uri;
        this.parameters = parameters;
        this.capabilities = capabilities;
        this.log = log;
        thread = new Thread(Run) { IsBackground = true, Name = "migration source" };
    }

    /// <summary>Raised on the migration thread when the status changes.</summary>
    public event Action<MigrationStatus>? StatusChanged;

    /// <summary>Raised on the migration thread after each precopy pass, with the pass number.</summary>
    public event Action<int>? PassCompleted;

    public MigrationStats Stats
    {
        get
        {
            lock (statsGate)
            {
                return stats.Status.IsFinished()
                    ? stats
                    : stats with
                    {
                        TotalTimeMs = totalClock.ElapsedMilliseconds,
                        PostcopyPreemptPages = (ulong)(preempt?.PagesSent ?? 0),
                        PostcopySharedPages = (pushRuns?.SharedBytes ?? 0) / PageSize,
                    };
            }
        }
    }

    public Task Completion => completion.Task;

    public static MigrationSource Create(IMigratableMachine machine, MigrationUri uri, MigrationParameters parameters, MigrationCapabilities capabilities, ILogger log) =>
        new(machine, uri, parameters, capabilities, log);

    /// <summary>migrate-start-postcopy: the precopy loop switches over at its next check (within ~1024 pages).</summary>
    public void StartPostcopy()
    {
        if (!capabilities.PostcopyRam)
        {
            throw new InvalidOperationException("this migration was started without the postcopy-ram capability");
        }

        postcopyRequested = true;
    }

    public void Start()
    {
        totalClock.Start();
        thread.Start();
    }

    /// <summary>migrate_cancel: stops as soon as possible; the guest keeps (or resumes) running here.</summary>
    public void Cancel()
    {
        // Too late once End (precopy) or Run (postcopy) is out: the destination may own the guest already.
        if (Stats.Status.IsFinished() || endSent || switchedOver)
        {
            return;
        }

        cancelRequested = true;
        Update(s => s with { Status = MigrationStatus.Cancelling });
        connection?.Abort();
        preempt?.Abort();
    }

    private void Run()
    {
        try
        {
            StatusChanged?.Invoke(MigrationStatus.Setup);
            connection = MigrationConnection.Connect(uri, TimeSpan.FromSeconds(10), parameters.Tls);

            // Writes are bounded (a destination that stops reading fails the migration); the return path is quiet
            // for long stretches by design, so its reads are not (TCP keepalive finds a vanished host).
            connection.SetTimeouts(TimeSpan.Zero, parameters.WriteTimeout);
            ThrowIfCancelled();
            StreamHeader.Write(connection.OutputStream);
            RamLayout layout = RamLayout.Of(machine.Ram);
            layout.Write(connection.Writer);
            connection.Writer.Flush();

            // Compiled now, while the guest runs, rather than in the downtime (the first migration of a process).
            machine.PrepareStateTransfer(message => log.Debug("{Message}", message));
            JitWarmUp.InBackground(
                () => JitWarmUp.Prepare(
                    typeof(MigrationSource), typeof(StateSection), typeof(DiscardRecord), typeof(ReturnPath), typeof(DirtyBitmap), typeof(PageRunWriter),
                    typeof(PageRecord), typeof(SharedPageRing)),
                message => log.Debug("{Message}", message));

            using var returnPath = returnPathReader = new ReturnPath(connection.Reader, connection.Abort);
            returnPath.Expect(RecordType.SetupAccepted, TimeSpan.FromSeconds(30), () => cancelRequested);
            if (capabilities.PostcopyRam)
            {
                // ADVISE: the destination checks userfaultfd support now, before anything irreversible.
                ring = OfferSharedRing();
                var advise = connection.Writer.Begin(RecordType.PostcopyAdvise);
                advise.U32(
                    (capabilities.PostcopyMinorFaults ? PostcopyAdviseFlags.MinorFaults : 0)
                    | (capabilities.PostcopyPreempt ? PostcopyAdviseFlags.Preempt : 0)
                    | (ring is not null ? PostcopyAdviseFlags.SharedMemory : 0));
                advise.Commit();
                connection.Writer.Flush();
                returnPath.Expect(RecordType.PostcopyAdviseAccepted, TimeSpan.FromSeconds(30), () => cancelRequested);
                if (returnPath.SharedRingAccepted && (ring is null || returnPath.PreemptToken is null))
                {
                    throw new MigrationStreamException("protocol error: the destination took a shared ring that was not offered");
                }

                if (!returnPath.SharedRingAccepted)
                {
                    ring?.Dispose();
                    ring = null;
                }

                if (capabilities.PostcopyPreempt && returnPath.PreemptToken is { } token)
                {
                    preempt = PreemptChannel.Open(uri, token, ring, parameters.WriteTimeout);
                }
            }

            IReadOnlyList<RamBlock> blocks = machine.Ram.Blocks;
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
                SendDirtyPages(blocks, returnPath);
                WritePassEnd(pass);
                connection.Writer.Flush();

                machine.SyncDirtyLog();
                hintSkips?.ForgetRedirtied();
                ulong dirtyPages = (ulong)blocks.Sum(b => (long)b.DirtyBitmap.CountSet());
                double seconds = Math.Max(passClock.Elapsed.TotalSeconds, 1e-6);
                double bytesPerSecond = ((ulong)connection.Writer.BytesWritten - bytesBefore) / seconds;
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

            if (postcopyRequested)
            {
                RunPostcopy(blocks, returnPath);

                // Close now: the destination reads until the source closes, and the return path reader ends with it.
                connection.Abort();
                preempt?.Abort();
                return;
            }

            // Switchover: from here the guest is paused until the destination confirms or the migration fails.
            var downtime = Stopwatch.StartNew();
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
            downtime.Stop();

            machine.StopDirtyLogging();
            loggingStarted = false;
            machine.CompleteOutgoingMigration();
            totalClock.Stop();
            Update(s => s with
            {
                Status = MigrationStatus.Completed,
                TotalTimeMs = totalClock.ElapsedMilliseconds,
                DowntimeMs = (long)downtime.Elapsed.TotalMilliseconds,
                DowntimeUs = (long)downtime.Elapsed.TotalMicroseconds,
                RemainingBytes = 0,
            });
            log.Information("migration to {Uri} completed in {Total} ms, downtime {Downtime} us", uri.Text, totalClock.ElapsedMilliseconds, (long)downtime.Elapsed.TotalMicroseconds);
            StatusChanged?.Invoke(MigrationStatus.Completed);
        }
        catch (Exception e) when (switchedOver)
        {
            // After the switchover the guest runs on the destination: never resume it here. This side keeps its copy
            // of guest memory untouched (the vCPUs stay stopped) and reports postcopy-paused.
            CloseHintRequest();
            totalClock.Stop();
            string message = Describe(e);
            Update(s => s with { Status = MigrationStatus.PostcopyPaused, ErrorDescription = message, TotalTimeMs = totalClock.ElapsedMilliseconds });
            log.Error("postcopy to {Uri} paused: {Message}; the guest's memory is kept here", uri.Text, message);
            StatusChanged?.Invoke(MigrationStatus.PostcopyPaused);
        }
        catch (Exception e) when (endSent)
        {
            // Everything was sent but the confirmation never came: the guest may be running on the destination. Keep
            // this copy stopped rather than risk two running guests; the user decides (check the destination, then
            // quit here, or cont here if the destination has no guest).
            CloseHintRequest();
            totalClock.Stop();
            TryStopDirtyLogging();
            string message = $"{Describe(e)}; the destination may be running the guest, so it stays paused here";
            Update(s => s with { Status = MigrationStatus.Failed, ErrorDescription = message, TotalTimeMs = totalClock.ElapsedMilliseconds });
            log.Error("migration to {Uri} failed after the last page was sent: {Message}", uri.Text, message);
            StatusChanged?.Invoke(MigrationStatus.Failed);
        }
        catch (Exception e)
        {
            // Before the status says finished (a new migration may start then): no hint of this one may touch the
            // dirty bitmaps the next one uses.
            CloseHintRequest();
            totalClock.Stop();
            if (loggingStarted)
            {
                TryStopDirtyLogging();
            }

            if (guestStopped)
            {
                machine.ResumeAfterFailedMigration();
            }

            MigrationStatus final = cancelRequested ? MigrationStatus.Cancelled : MigrationStatus.Failed;
            string message = cancelRequested ? "cancelled by the user" : Describe(e);
            Update(s => s with { Status = final, ErrorDescription = final == MigrationStatus.Failed ? message : null, TotalTimeMs = totalClock.ElapsedMilliseconds });
            log.Warning("migration to {Uri} {Status}: {Message}", uri.Text, final.ToQmp(), message);
            StatusChanged?.Invoke(final);
        }
        finally
        {
            CloseHintRequest();
            connection?.Dispose();
            preempt?.Dispose();
            ring?.Dispose();
            zeroPages.Dispose();
            completion.TrySetResult();
        }
    }

    /// <summary>
    /// Sends every page whose dirty bit is set, clearing the bit first so a write during the copy is seen again.
    /// Consecutive pages go as runs (<see cref="PageRunWriter"/>); on anonymous memory a page never populated is known
    /// to be zero without reading it (<see cref="ZeroPageDetector"/>).
    /// </summary>
    private void SendDirtyPages(IReadOnlyList<RamBlock> blocks, ReturnPath returnPath)
    {
        RecordWriter writer = connection!.Writer;
        var runs = new PageRunWriter(writer);

        // The guest may have populated pages since the last pass.
        zeroPages.Invalidate();
        ulong normal = 0;
        ulong zero = 0;
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

                bool isZero = zeroPages.IsZero(block, page);
                runs.Add(index, block, page * PageSize, PageSize, isZero);
                if (isZero)
                {
                    zero++;
                }
                else
                {
                    normal++;
                }

                if (((normal + zero) & 1023) == 0)
                {
                    runs.Flush();
                    if (postcopyRequested && !guestStopped)
                    {
                        PublishProgress(normal, zero);
                        return;
                    }

                    ThrowIfCancelled();
                    CheckReturnPath(returnPath);
                    Throttle((ulong)writer.BytesWritten);
                    PublishProgress(normal, zero);
                    normal = zero = 0;
                }
            }

            runs.Flush();
        }

        PublishProgress(normal, zero);
    }

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
        var cursors = new ulong[blocks.Count];
        ulong[] requestedUpTo = [.. blocks.Select(_ => NoRequest)];

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

        long stoppedAt = Stopwatch.GetTimestamp();
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
        var pushRuns = this.pushRuns = new PageRunWriter(writer, ring, () => returnPath.ClosedReason);
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
                        FinishPostcopy(returnPath, stoppedAt);
                        return;
                    default:
                        ReturnPath.Fail(message);
                        break;
                }
            }

            if (!pushDone && PushSome(blocks, cursors, requestedUpTo, pushRuns, pushBatchBytes))
            {
                // Outside the writer lock: request answers never wait behind the bandwidth cap.
                Throttle((ulong)writer.BytesWritten + pushRuns.SharedBytes);
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
                ulong writtenBefore = (ulong)writer.BytesWritten + runs.SharedBytes;
                ulong sent = 0;
                while ((ulong)writer.BytesWritten + runs.SharedBytes - writtenBefore < batchBytes && sent < BatchPages)
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
                    Update(s => s with { TransferredBytes = (ulong)writer.BytesWritten + runs.SharedBytes, RemainingBytes = s.RemainingBytes > bytes ? s.RemainingBytes - bytes : 0 });
                    return true;
                }
            }
        }

        return false;
    }

    private void FinishPostcopy(ReturnPath returnPath, long stoppedAt)
    {
        long runningAt = returnPath.PostcopyRunningAt;
        machine.StopDirtyLogging();
        loggingStarted = false;
        machine.CompleteOutgoingMigration();
        totalClock.Stop();
        long switchoverUs = Downtime(returnPath, stoppedAt, runningAt);
        Update(s => s with
        {
            Status = MigrationStatus.Completed,
            TotalTimeMs = totalClock.ElapsedMilliseconds,
            DowntimeMs = switchoverUs / 1000,
            DowntimeUs = switchoverUs,
            PostcopyRequests = (ulong)Interlocked.Read(ref postcopyRequests),
            PostcopyPreemptPages = (ulong)(preempt?.PagesSent ?? 0),
            PostcopySharedPages = (pushRuns?.SharedBytes ?? 0) / PageSize,
            TransferredBytes = (ulong)connection!.Writer.BytesWritten + (ulong)(preempt?.BytesWritten ?? 0) + (pushRuns?.SharedBytes ?? 0),
            RemainingBytes = 0,
        });
        log.Information(
            "postcopy to {Uri} completed in {Total} ms: downtime {Downtime} us, {Requests} page requests served",
            uri.Text, totalClock.ElapsedMilliseconds, switchoverUs, Interlocked.Read(ref postcopyRequests));
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

    private void PublishProgress(ulong normal, ulong zero) => Update(s => s with
    {
        NormalPages = s.NormalPages + normal,
        NormalBytes = s.NormalBytes + (normal * PageSize),
        DuplicatePages = s.DuplicatePages + zero,
        TransferredBytes = (ulong)connection!.Writer.BytesWritten,
        PagesPerSecond = (ulong)((s.NormalPages + s.DuplicatePages + normal + zero) / Math.Max(totalClock.Elapsed.TotalSeconds, 1e-6)),
    });

    private void WritePassEnd(int pass)
    {
        var payload = connection!.Writer.Begin(RecordType.PassEnd);
        payload.U32((uint)pass);
        payload.Commit();
    }

    /// <summary>Sleeps as needed to keep the average rate under max-bandwidth.</summary>
    private void Throttle(ulong bytesWritten)
    {
        // With the guest stopped every millisecond is downtime: the cap is lifted, as QEMU does at completion.
        if (parameters.MaxBandwidth == 0 || (guestStopped && !switchedOver))
        {
            return;
        }

        double allowedSeconds = bytesWritten / (double)parameters.MaxBandwidth;
        double ahead = allowedSeconds - throttleClock.Elapsed.TotalSeconds;
        if (ahead > 0.001)
        {
            // Under the writer lock: in postcopy the return-path thread writes request answers concurrently.
            lock (writerGate)
            {
                connection!.Writer.Flush();
            }

            Thread.Sleep(TimeSpan.FromSeconds(ahead));
        }
    }

    /// <summary>Fails fast when the destination reported an error or the return path broke.</summary>
    private static void CheckReturnPath(ReturnPath returnPath)
    {
        if (returnPath.TryTake(out ReturnMessage message))
        {
            ReturnPath.Fail(message);
        }
    }

    private void ThrowIfCancelled()
    {
        if (cancelRequested)
        {
            throw new OperationCanceledException();
        }
    }

    private void TryStopDirtyLogging()
    {
        try
        {
            machine.StopDirtyLogging();
        }
        catch (Exception e)
        {
            log.Warning("stopping dirty logging after a failed migration: {Message}", e.Message);
        }
    }

    private string Describe(Exception e) => e switch
    {
        MigrationFailedException or MigrationStreamException => e.Message,

        // The return-path reader aborted the connection because the destination broke the protocol: that is the cause.
        IOException when returnPathReader?.ClosedReason is { } reason && reason.StartsWith("protocol error", StringComparison.Ordinal) => reason,
        // SO_SNDTIMEO expired with the peer still there (a peer that is gone reads as closed: that is a broken connection).
        IOException { InnerException: System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.TimedOut or System.Net.Sockets.SocketError.WouldBlock } }
            when connection is { PeerClosed: false } =>
            $"the destination stopped reading: a write to {uri.Text} blocked for more than {parameters.WriteTimeout.TotalSeconds:0.#} s",
        IOException io => $"the migration connection to {uri.Text} broke: {io.InnerException?.Message ?? io.Message}",
        _ => $"{e.GetType().Name}: {e.Message}",
    };

    private void Update(Func<MigrationStats, MigrationStats> change)
    {
        lock (statsGate)
        {
            stats = change(stats);
        }
    }
}
