using System.Text.Json.Nodes;
using Vmm.Machine;

namespace Vmm.Qmp;

/// <summary>The QMP event (name and data, as QEMU sends it) for each machine event.</summary>
public static class QmpEvents
{
    public const string Stop = "STOP";
    public const string Resume = "RESUME";
    public const string Shutdown = "SHUTDOWN";
    public const string Reset = "RESET";

    public static (string Name, JsonObject? Data) From(MachineEvent machineEvent) => machineEvent.Kind switch
    {
        MachineEventKind.Stop => (Stop, null),
        MachineEventKind.Resume => (Resume, null),
        MachineEventKind.Shutdown => (Shutdown, GuestAndReason(machineEvent, "host-error")),
        MachineEventKind.Reset => (Reset, GuestAndReason(machineEvent, "host-qmp-system-reset")),
        _ => throw new ArgumentOutOfRangeException(nameof(machineEvent), machineEvent.Kind, "no QMP event for this machine event"),
    };

    /// <summary>{"guest": …, "reason": …}: who caused it and QEMU's ShutdownCause name.</summary>
    private static JsonObject GuestAndReason(MachineEvent machineEvent, string defaultReason) => new()
    {
        ["guest"] = machineEvent.GuestInitiated,
        ["reason"] = machineEvent.Reason ?? defaultReason,
    };
}
