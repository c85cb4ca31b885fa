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
/// One class, one file per phase: this file holds the connection, the setup and the failure handling common to all;
/// <c>MigrationSource.Precopy.cs</c> the live passes and the precopy end; <c>MigrationSource.Postcopy.cs</c> the
/// switchover, request serving and the push; <c>MigrationSource.Recovery.cs</c> the resumption of a paused postcopy
/// over a new connection.
/// </remarks>
/// <remarks>
/// During the live passes the guest is asked for free-page hints (when the machine has the device,
/// <see cref="IFreePageHinting"/>): a hinted page still waiting to be sent is put off (<see cref="FreePageHintSkips"/>),
/// and before the guest stops for good every put-off page goes back into the dirty set, so a hint saves bandwidth
/// during precopy but never loses a page.
/// </remarks>
public sealed partial class MigrationSource
{
    private const ulong PageSize = DirtyBitmap.PageSize;

    /// <summary>No page request has come for a block since the push last looked.</summary>
    private const ulong NoRequest = ulong.MaxValue;

    /// <summary>Page requests that may wait for the switchover (made before the guest runs on the destination).</summary>
    private const int MaxEarlyRequests = 4096;

    /// <summary>The return path's reader, once there is one: why it closed may explain a failed write.</summary>
    private ReturnPath? returnPathReader;

    private readonly IMigratableMachine machine;
    /// <summary>Where the migration goes: the destination's URI, replaced by the one given to a resume.</summary>
    private MigrationUri uri;
    private readonly MigrationParameters parameters;
    private readonly MigrationCapabilities capabilities;
    private readonly ILogger log;
    private readonly Thread thread;
    private TaskCompletionSource completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>migrate-set-parameters as they are now: the postcopy bandwidth may change while this runs.</summary>
    private readonly Func<MigrationParameters> liveParameters;
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
    private volatile bool switchedOver;
    private bool endSent;
    private long postcopyRequests;
    private FreePageHintSkips? hintSkips;

    /// <summary>The xbzrle capability's sender and cache, during precopy only (postcopy sends whole pages).</summary>
    private XbzrlePageSender? xbzrle;
    private IDisposable? hintRequest;
    private MigrationStats stats = new() { Status = MigrationStatus.Setup };

    /// <summary>The cap the throttle's average runs under, and the bytes written when that average started.</summary>
    private ulong throttleRate;
    private ulong throttleBaseBytes;

    private MigrationSource(IMigratableMachine machine, MigrationUri uri, MigrationParameters parameters, MigrationCapabilities capabilities, ILogger log, Func<MigrationParameters>? liveParameters)
    {
        this.liveParameters = liveParameters ?? (() => parameters);
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
                        PostcopyPreemptPages = earlierPreemptPages + (ulong)(preempt?.PagesSent ?? 0),
                        PostcopySharedPages = earlierSharedPages + ((pushRuns?.SharedBytes ?? 0) / PageSize),
                        SparsePages = (ulong)Interlocked.Read(ref precopySparsePages) + earlierSparsePages + (pushRuns?.SparsePages ?? 0),
                    };
            }
        }
    }

    /// <summary>Ends when this attempt stops: finished, or paused in postcopy (a resume starts a new attempt).</summary>
    public Task Completion => Volatile.Read(ref completion).Task;

    /// <param name="liveParameters">The parameters as they are when asked (max-postcopy-bandwidth applies at once); default: <paramref name="parameters"/>.</param>
    public static MigrationSource Create(
        IMigratableMachine machine, MigrationUri uri, MigrationParameters parameters, MigrationCapabilities capabilities, ILogger log, Func<MigrationParameters>? liveParameters = null) =>
        new(machine, uri, parameters, capabilities, log, liveParameters);

    /// <summary>Past the postcopy switchover (Run sent): the guest belongs to the destination, cancelling is no longer possible.</summary>
    public bool SwitchedOver => switchedOver;

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
                    typeof(PageRecord), typeof(SharedPageRing), typeof(XbzrlePageSender), typeof(XbzrleCache), typeof(XbzrleEncoding), typeof(SparsePageEncoding)),
                message => log.Debug("{Message}", message));

            using var returnPath = returnPathReader = new ReturnPath(connection.Reader, connection.Abort);
            returnPath.Expect(RecordType.SetupAccepted, TimeSpan.FromSeconds(30), () => cancelRequested);
            if (capabilities.PostcopyRam)
            {
                // ADVISE: the destination checks userfaultfd support now, before anything irreversible. Under TLS no
                // preempt channel is asked for: it would be a second, plain connection carrying guest pages.
                bool preemptWanted = capabilities.PostcopyPreempt && !connection.Encrypted;
                ring = preemptWanted ? OfferSharedRing() : null;
                var advise = connection.Writer.Begin(RecordType.PostcopyAdvise);
                advise.U32(
                    (capabilities.PostcopyMinorFaults ? PostcopyAdviseFlags.MinorFaults : 0)
                    | (preemptWanted ? PostcopyAdviseFlags.Preempt : 0)
                    | (ring is not null ? PostcopyAdviseFlags.SharedMemory : 0));
                advise.Commit();

                // The name a recovery presents: sent now, so no cut after the switchover can lose it.
                var name = connection.Writer.Begin(RecordType.PostcopyName);
                name.Bytes(migrationName.ToByteArray());
                name.Commit();
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

                if (!preemptWanted && returnPath.PreemptToken is not null)
                {
                    // Never taken: under TLS the pages would leave the encrypted connection.
                    throw new MigrationStreamException("protocol error: the destination offered a postcopy preempt channel that was not asked for");
                }

                if (returnPath.PreemptToken is { } token)
                {
                    preempt = PreemptChannel.Open(uri, token, ring, parameters.WriteTimeout);
                }
            }

            IReadOnlyList<RamBlock> blocks = machine.Ram.Blocks;
            RunPrecopy(blocks, returnPath);
            if (postcopyRequested)
            {
                // Postcopy moves whole pages: the destination refuses deltas from the first discard on.
                DropXbzrle();
                RunPostcopy(blocks, returnPath);

                // Close now: the destination reads until the source closes, and the return path reader ends with it.
                connection.Abort();
                preempt?.Abort();
                return;
            }

            CompletePrecopy(blocks, returnPath);
        }
        catch (Exception e) when (switchedOver)
        {
            Pause(e);
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
            DropXbzrle();
            connection?.Dispose();
            preempt?.Dispose();
            ring?.Dispose();
            ReleaseUnlessPaused();
            completion.TrySetResult();
        }
    }

    /// <summary>
    /// After the switchover the guest runs on the destination: never resume it here. This side keeps its copy of guest
    /// memory untouched (the vCPUs stay stopped, dirty logging stays on) and reports postcopy-paused, ready for
    /// <see cref="Resume"/>.
    /// </summary>
    private void Pause(Exception e)
    {
        CloseHintRequest();
        totalClock.Stop();
        string message = Describe(e);

        // What the first connection measured and sent is kept across recoveries.
        if (returnPathReader is { } first)
        {
            if (switchoverDowntimeUs is null && first.PostcopyRunningAt != 0)
            {
                switchoverDowntimeUs = Downtime(first, postcopyStoppedAt, first.PostcopyRunningAt);
            }
        }

        earlierBytes = TransferredSoFar();
        earlierPreemptPages += (ulong)(preempt?.PagesSent ?? 0);
        earlierSharedPages += (pushRuns?.SharedBytes ?? 0) / PageSize;
        earlierSparsePages += pushRuns?.SparsePages ?? 0;
        pushRuns = null;

        // The preempt channel and the ring belonged to the broken connection; a recovery goes on without them.
        preempt?.Dispose();
        preempt = null;
        ring?.Dispose();
        ring = null;
        Update(s => s with { Status = MigrationStatus.PostcopyPaused, ErrorDescription = message, TotalTimeMs = totalClock.ElapsedMilliseconds, TransferredBytes = earlierBytes });
        log.Error("postcopy to {Uri} paused: {Message}; the guest's memory is kept here", uri.Text, message);
        StatusChanged?.Invoke(MigrationStatus.PostcopyPaused);
    }

    /// <summary>Frees what only this migration uses, unless it is paused (a recovery needs it).</summary>
    private void ReleaseUnlessPaused()
    {
        if (Stats.Status != MigrationStatus.PostcopyPaused)
        {
            zeroPages.Dispose();
        }
    }

    /// <summary>How far behind the cap the average may fall before it starts again (the largest burst it allows).</summary>
    private static readonly TimeSpan ThrottleSlack = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Sleeps as needed to keep the average rate under the cap: max-bandwidth for precopy; for the postcopy push
    /// max-postcopy-bandwidth once set (0 = unlimited), else max-bandwidth. A changed cap starts a new average from
    /// here, so raising it takes effect at once. Time spent not sending (waiting for the destination's discard
    /// acknowledgement, a pause, a slow disk of a peer) is not saved up: more than <see cref="ThrottleSlack"/> behind
    /// the cap, the average starts again from here, so the cap still holds right after a stall instead of allowing a
    /// burst of everything the idle seconds would have paid for (QEMU's rate limit also works in short windows).
    /// </summary>
    private void Throttle(ulong bytesWritten)
    {
        // With the guest stopped every millisecond is downtime: the cap is lifted, as QEMU does at completion.
        if (guestStopped && !switchedOver)
        {
            return;
        }

        MigrationParameters now = liveParameters();
        ulong rate = switchedOver ? now.MaxPostcopyBandwidth ?? parameters.MaxBandwidth : parameters.MaxBandwidth;
        if (rate != throttleRate || bytesWritten < throttleBaseBytes)
        {
            throttleRate = rate;
            throttleBaseBytes = bytesWritten;
            throttleClock.Restart();
        }

        if (rate == 0)
        {
            return;
        }

        double allowedSeconds = (bytesWritten - throttleBaseBytes) / (double)rate;
        double ahead = allowedSeconds - throttleClock.Elapsed.TotalSeconds;
        if (ahead < -ThrottleSlack.TotalSeconds)
        {
            throttleBaseBytes = bytesWritten;
            throttleClock.Restart();
        }
        else if (ahead > 0.001)
        {
            // Under the writer lock: in postcopy the return-path thread writes request answers concurrently.
            lock (writerGate)
            {
                connection!.Writer.Flush();
            }

            Thread.Sleep(TimeSpan.FromSeconds(Math.Min(ahead, 1)));
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
