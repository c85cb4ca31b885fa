using Vmm.Qmp.Hmp;

namespace Vmm.Qmp.Commands;

/// <summary>human-monitor-command: QEMU's bridge to the human monitor; returns the text the command printed.</summary>
public static class HumanMonitorCommands
{
    public static void Register(QmpCommandRegistry registry)
    {
        registry.Add(new QmpCommand(
            "human-monitor-command",
            [
                QmpParameter.Required("command-line", QmpParameterType.String),
                QmpParameter.Maybe("cpu-index", QmpParameterType.Integer),
            ],
            (context, arguments) =>
            {
                var monitor = new HumanMonitor(context.Machine, GuestMemoryView.Cpu(context.Machine, arguments.GetOptionalInteger("cpu-index")));
                return monitor.Execute(arguments.GetString("command-line"));
            }));
    }
}
