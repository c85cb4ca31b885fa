namespace Vmm.Machine;

/// <summary>
/// Something users of the machine are told about (QMP events STOP, RESUME, SHUTDOWN, RESET). Raised on whichever
/// thread caused it; handlers must not block.
/// </summary>
public sealed record MachineEvent(MachineEventKind Kind, string? Reason = null, bool GuestInitiated = false);

public enum MachineEventKind
{
    Stop,
    Resume,
    Shutdown,
    Reset,
}
