using Vmm.Qmp.Commands;

namespace Vmm.Qmp;

/// <summary>
/// The command table, in registration order (query-commands lists it). Each command group registers itself; later
/// features (migration) add their own groups the same way.
/// </summary>
public sealed class QmpCommandRegistry
{
    private readonly Dictionary<string, QmpCommand> byName = new(StringComparer.Ordinal);
    private readonly List<QmpCommand> ordered = [];
    private readonly object gate = new();

    public IReadOnlyList<QmpCommand> Commands
    {
        get
        {
            lock (gate)
            {
                return ordered.ToList();
            }
        }
    }

    /// <summary>Every command vmm has: negotiation, run control, introspection, memory, HMP, RAM blocks, migration.</summary>
    public static QmpCommandRegistry CreateDefault()
    {
        var registry = new QmpCommandRegistry();
        NegotiationCommands.Register(registry);
        RunControlCommands.Register(registry);
        IntrospectionCommands.Register(registry);
        MemoryDumpCommands.Register(registry);
        HumanMonitorCommands.Register(registry);
        RamBlockCommands.Register(registry);
        MigrationCommands.Register(registry);
        return registry;
    }

    public void Add(QmpCommand command)
    {
        lock (gate)
        {
            if (!byName.TryAdd(command.Name, command))
            {
                throw new ArgumentException($"QMP command '{command.Name}' is already registered", nameof(command));
            }

            ordered.Add(command);
        }
    }

    public QmpCommand? Find(string name)
    {
        lock (gate)
        {
            return byName.GetValueOrDefault(name);
        }
    }
}
