using System.Diagnostics;
using Serilog;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Migration.Source;

/// <summary>
/// An outgoing migration, run on its own thread: connect, send the layout and wait for the destination to accept
/// it, then precopy (every page once, then the pages dirtied meanwhile, pass after pass) until the rest fits the
/// downtime limit; stop the guest, send the last dirty pages and the vCPU and device state, and wait for the
/// destination to confirm. Any failure before that confirmation leaves the guest running here.
/// </summary>
public sealed class MigrationSource
{
    private const ulong PageSize = DirtyBitmap.PageSize;

    private readonly IMigratableMachine machine;
    private readonly MigrationUri uri;
    private readonly MigrationParameters parameters;
    private readonly ILogger log;
    private readonly Thread thread;
    private readonly TaskCompletionSource completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object statsGate = new();
    private readonly Stopwatch totalClock = new();
    private readonly Stopwatch throttleClock = new();

    private MigrationConnection? connection;
    private volatile bool cancelRequested;
    private MigrationStats stats = new() { Status = MigrationStatus.Setup };

    private MigrationSource(IMigratableMachine machine, MigrationUri uri, MigrationParameters parameters, ILogger log)
    {
        this.machine = machine;
        this.uri = uri;
        this.parameters = parameters;
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
                return stats with { TotalTimeMs = stats.Status.IsFinished() ? stats.TotalTimeMs : totalClock.ElapsedMilliseconds };
            }
        }
    }

    public Task Completion => completion.Task;

    public static MigrationSource Create(IMigratableMachine machine, MigrationUri uri, MigrationParameters parameters, ILogger log) =>
        new(machine, uri, parameters, log);

    public void Start()
    {
        totalClock.Start();
        thread.Start();
    }

    /// <summary>migrate_cancel: stops as soon as possible; the guest keeps (or resumes) running here.</summary>
    public void Cancel()
    {
        if (Stats.Status.IsFinished())
        {
            return;
        }

        cancelRequested = true;
        Update(s => s with { Status = MigrationStatus.Cancelling });
        connection?.Abort();
    }

    private void Run()
    {
        bool logging = false;
        bool stopped = false;
        try
        {
            StatusChanged?.Invoke(MigrationStatus.Setup);
            connection = MigrationConnection.Connect(uri, TimeSpan.FromSeconds(10));
            ThrowIfCancelled();
            StreamHeader.Write(connection.OutputStream);
            RamLayout layout = RamLayout.Of(machine.Ram);
            layout.Write(connection.Writer);
            connection.Writer.Flush();

            using var returnPath = new ReturnPath(connection.Reader);
            returnPath.Expect(RecordType.SetupAccepted, TimeSpan.FromSeconds(30), () => cancelRequested);

            IReadOnlyList<RamBlock> blocks = machine.Ram.Blocks;
            machine.StartDirtyLogging();
            logging = true;
            foreach (RamBlock block in blocks)
            {
                block.DirtyBitmap.SetRange(0, block.UsedLength / PageSize);
            }

            ulong total = (ulong)blocks.Sum(b => (long)b.UsedLength);
            Update(s => s with { Status = MigrationStatus.Active, SetupTimeMs = totalClock.ElapsedMilliseconds, TotalBytes = total, RemainingBytes = total });
            StatusChanged?.Invoke(MigrationStatus.Active);
            log.Information("migration to {Uri}: layout accepted, precopy of {Total} bytes", uri.Text, total);
            throttleClock.Start();

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
                if ((ulong)expectedDowntimeMs <= parameters.DowntimeLimitMs || pass >= parameters.MaxPasses)
                {
                    break;
                }
            }

            // Switchover: from here the guest is paused until the destination confirms or the migration fails.
            var downtime = Stopwatch.StartNew();
            machine.StopForMigration();
            stopped = true;
            machine.SyncDirtyLog();
            SendDirtyPages(blocks, returnPath);
            foreach (StateSection section in machine.SaveState())
            {
                section.Write(connection.Writer);
            }

            connection.Writer.Write(RecordType.End, []);
            connection.Writer.Flush();
            returnPath.Expect(RecordType.Complete, TimeSpan.FromSeconds(60), () => cancelRequested);
            downtime.Stop();

            machine.StopDirtyLogging();
            logging = false;
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
        catch (Exception e)
        {
            totalClock.Stop();
            if (logging)
            {
                TryStopDirtyLogging();
            }

            if (stopped)
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
            connection?.Dispose();
            completion.TrySetResult();
        }
    }

    /// <summary>Sends every page whose dirty bit is set, clearing the bit first so a write during the copy is seen again.</summary>
    private void SendDirtyPages(IReadOnlyList<RamBlock> blocks, ReturnPath returnPath)
    {
        RecordWriter writer = connection!.Writer;
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

                if (PageRecord.Write(writer, index, page * PageSize, block.GetSpan(page * PageSize, (int)PageSize)))
                {
                    zero++;
                }
                else
                {
                    normal++;
                }

                if (((normal + zero) & 1023) == 0)
                {
                    ThrowIfCancelled();
                    CheckReturnPath(returnPath);
                    Throttle((ulong)writer.BytesWritten);
                    PublishProgress(normal, zero);
                    normal = zero = 0;
                }
            }
        }

        PublishProgress(normal, zero);
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
        if (parameters.MaxBandwidth == 0)
        {
            return;
        }

        double allowedSeconds = bytesWritten / (double)parameters.MaxBandwidth;
        double ahead = allowedSeconds - throttleClock.Elapsed.TotalSeconds;
        if (ahead > 0.001)
        {
            connection!.Writer.Flush();
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
