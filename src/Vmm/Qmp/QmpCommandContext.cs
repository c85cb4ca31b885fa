using Vmm.Machine;

namespace Vmm.Qmp;

/// <summary>What a command can reach: the machine, the command table, its own client's session.</summary>
public sealed class QmpCommandContext(VirtualMachine machine, QmpCommandRegistry commands, QmpSession session, CancellationToken aborting)
{
    private readonly List<Action> afterReply = [];

    public VirtualMachine Machine { get; } = machine;

    public QmpCommandRegistry Commands { get; } = commands;

    public QmpSession Session { get; } = session;

    /// <summary>Signalled when the VMM is exiting: long commands (memory dumps) check it between chunks.</summary>
    public CancellationToken Aborting { get; } = aborting;

    /// <summary>
    /// Runs <paramref name="action"/> once the reply is queued to the client: for commands whose effect must come
    /// after their answer (quit ends the process; QEMU answers it first and then sends SHUTDOWN).
    /// </summary>
    public void AfterReply(Action action) => afterReply.Add(action);

    internal IReadOnlyList<Action> TakeAfterReplyActions() => afterReply;
}
