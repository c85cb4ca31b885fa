using System.Net.Sockets;
using Serilog;
using Vmm.Migration.Destination;
using Vmm.Migration.Source;

namespace Vmm.Migration;

/// <summary>
/// The machine's migration front door, behind the monitor's migrate commands: capabilities, parameters, the
/// current outgoing migration (one at a time), the incoming one, and the events the monitor forwards.
/// </summary>
public sealed class MigrationController(IMigratableMachine machine, ILogger log)
{
    private readonly object gate = new();
    private MigrationSource? outgoing;
    private IncomingMigration? incoming;
    private MigrationStats? incomingFailure;

    /// <summary>MIGRATION events: every status change of the outgoing or incoming migration.</summary>
    public event Action<MigrationStatus>? StatusChanged;

    /// <summary>MIGRATION_PASS events: the number of each completed precopy pass.</summary>
    public event Action<int>? PassCompleted;

    public MigrationCapabilities Capabilities { get; private set; } = new();

    public MigrationParameters Parameters { get; private set; } = new();

    public bool IsActive
    {
        get
        {
            lock (gate)
            {
                return outgoing is not null && !outgoing.Stats.Status.IsFinished();
            }
        }
    }

    /// <summary>What query-migrate reports: the latest migration in either direction, or null if there was none.</summary>
    public MigrationStats? Stats
    {
        get
        {
            lock (gate)
            {
                return outgoing?.Stats ?? incomingFailure ?? incoming?.Stats;
            }
        }
    }

    public void SetCapabilities(MigrationCapabilities capabilities)
    {
        lock (gate)
        {
            ThrowIfActive("change migration capabilities");
            Capabilities = capabilities;
        }
    }

    public void SetParameters(MigrationParameters parameters)
    {
        lock (gate)
        {
            // QEMU lets parameters change mid-migration; a running source keeps the values it started with, except
            // max-postcopy-bandwidth, which it reads as it pushes (a recovered migration may be sped up).
            Parameters = parameters;
        }
    }

    /// <summary>
    /// QMP migrate: starts an outgoing migration in the background; with <paramref name="resume"/>, reconnects the
    /// migration paused in postcopy to <paramref name="uriText"/> instead (where the destination's migrate-recover listens).
    /// </summary>
    public MigrationSource Migrate(string uriText, bool resume = false)
    {
        MigrationUri uri = MigrationUri.TryParse(uriText, out MigrationUri? parsed, out string? error)
            ? parsed!
            : throw new ArgumentException(error);
        lock (gate)
        {
            if (resume)
            {
                if (outgoing is null)
                {
                    throw new InvalidOperationException("there is no paused migration to resume");
                }

                outgoing.Resume(uri);
                return outgoing;
            }

            ThrowIfActive("start another migration");
            var source = MigrationSource.Create(machine, uri, Parameters, Capabilities, log, () => Parameters);
            source.StatusChanged += status => StatusChanged?.Invoke(status);
            source.PassCompleted += pass => PassCompleted?.Invoke(pass);
            outgoing = source;
            source.Start();
            return source;
        }
    }

    /// <summary>
    /// QMP migrate_cancel: a no-op when nothing is running, as in QEMU; refused once postcopy has switched over (the
    /// guest runs on the destination and only this side has the pages it lacks: cancelling would lose it).
    /// </summary>
    public void Cancel()
    {
        MigrationSource? source;
        lock (gate)
        {
            source = outgoing;
        }

        if (source is { SwitchedOver: true } && !source.Stats.Status.IsFinished())
        {
            throw new InvalidOperationException(
                $"cannot cancel a migration in {source.Stats.Status.ToQmp()}: the guest runs on the destination and needs the pages only this side has (a paused migration is resumed with migrate and \"resume\": true)");
        }

        source?.Cancel();
    }

    /// <summary>
    /// QMP migrate-recover (destination): listen on <paramref name="uriText"/> for the source of the postcopy paused here
    /// to resume. Only in postcopy-paused.
    /// </summary>
    public void Recover(string uriText)
    {
        MigrationUri uri = MigrationUri.TryParse(uriText, out MigrationUri? parsed, out string? error)
            ? parsed!
            : throw new ArgumentException(error);
        IncomingMigration receiver;
        lock (gate)
        {
            receiver = incoming ?? throw new InvalidOperationException("migrate-recover is only possible in postcopy-paused; there is no incoming migration");
        }

        try
        {
            receiver.Recover(uri);
        }
        catch (MigrationFailedException e)
        {
            throw new InvalidOperationException(e.Message, e);
        }
    }

    /// <summary>
    /// Destination: waits for the source on <paramref name="listener"/> and receives the guest. Postcopy is accepted
    /// only when this side's postcopy-ram capability is on, as in QEMU.
    /// </summary>
    public void RunIncoming(Socket listener, MigrationTimeouts? timeouts = null)
    {
        var receiver = new IncomingMigration(machine, log, () => Capabilities.PostcopyRam, () => Capabilities.PostcopyMinorFaults, () => Capabilities.PostcopyPreempt, () => Capabilities.PostcopySharedMemory, timeouts, () => Parameters.Tls);
        receiver.StatusChanged += status => StatusChanged?.Invoke(status);
        lock (gate)
        {
            incoming = receiver;
            incomingFailure = null;
        }

        try
        {
            receiver.Run(listener);
        }
        catch (Exception e) when (e is not (MigrationFailedException or Stream.MigrationStreamException))
        {
            lock (gate)
            {
                incomingFailure = new MigrationStats { Status = MigrationStatus.Failed, ErrorDescription = e.Message };
            }

            throw;
        }
    }

    /// <summary>
    /// The machine is going away: cancel an outgoing migration and release an incoming one (a paused postcopy keeps
    /// vCPUs blocked on missing pages until its userfaultfd registrations are dropped).
    /// </summary>
    public void Shutdown()
    {
        MigrationSource? source;
        IncomingMigration? receiver;
        lock (gate)
        {
            source = outgoing;
            receiver = incoming;
        }

        source?.Cancel();
        receiver?.Interrupt();
        receiver?.Abort();
    }

    /// <summary>
    /// The machine is exiting (quit, a signal): an incoming migration still waiting for its source, or for the
    /// source's next record, gives up now. Does nothing to a guest already running here.
    /// </summary>
    public void InterruptIncoming()
    {
        IncomingMigration? receiver;
        lock (gate)
        {
            receiver = incoming;
        }

        receiver?.Interrupt();
    }

    /// <summary>migrate-start-postcopy: switch the running outgoing migration to postcopy as soon as possible.</summary>
    public void StartPostcopy()
    {
        lock (gate)
        {
            if (!Capabilities.PostcopyRam)
            {
                throw new InvalidOperationException("postcopy-ram is not enabled (migrate-set-capabilities)");
            }

            if (outgoing is null || outgoing.Stats.Status.IsFinished())
            {
                throw new InvalidOperationException("no migration is in progress (start it with migrate first)");
            }

            outgoing.StartPostcopy();
        }
    }

    private void ThrowIfActive(string what)
    {
        if (outgoing is not null && !outgoing.Stats.Status.IsFinished())
        {
            throw new InvalidOperationException($"cannot {what} while a migration is in progress");
        }
    }
}
