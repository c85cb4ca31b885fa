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
    private MigrationStats? incomingStats;

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
                return outgoing?.Stats ?? incomingStats;
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
            // QEMU lets parameters change mid-migration; a running source keeps the values it started with.
            Parameters = parameters;
        }
    }

    /// <summary>QMP migrate: starts an outgoing migration in the background.</summary>
    public MigrationSource Migrate(string uriText)
    {
        MigrationUri uri = MigrationUri.TryParse(uriText, out MigrationUri? parsed, out string? error)
            ? parsed!
            : throw new ArgumentException(error);
        lock (gate)
        {
            ThrowIfActive("start another migration");
            var source = MigrationSource.Create(machine, uri, Parameters, log);
            source.StatusChanged += status => StatusChanged?.Invoke(status);
            source.PassCompleted += pass => PassCompleted?.Invoke(pass);
            outgoing = source;
            incomingStats = null;
            source.Start();
            return source;
        }
    }

    /// <summary>QMP migrate_cancel: a no-op when nothing is running, as in QEMU.</summary>
    public void Cancel()
    {
        MigrationSource? source;
        lock (gate)
        {
            source = outgoing;
        }

        source?.Cancel();
    }

    /// <summary>Destination: waits for the source on <paramref name="listener"/> and receives the guest.</summary>
    public void RunIncoming(Socket listener)
    {
        SetIncoming(MigrationStatus.Setup, null);
        var incoming = new IncomingMigration(machine, log);
        try
        {
            incoming.Run(listener);
            SetIncoming(MigrationStatus.Completed, null);
        }
        catch (Exception e)
        {
            SetIncoming(MigrationStatus.Failed, e.Message);
            throw;
        }
    }

    private void SetIncoming(MigrationStatus status, string? error)
    {
        lock (gate)
        {
            incomingStats = new MigrationStats { Status = status, ErrorDescription = error };
        }

        StatusChanged?.Invoke(status);
    }

    private void ThrowIfActive(string what)
    {
        if (outgoing is not null && !outgoing.Stats.Status.IsFinished())
        {
            throw new InvalidOperationException($"cannot {what} while a migration is in progress");
        }
    }
}
