namespace Vmm.Machine;

/// <summary>Why a machine stopped, and the process exit status that reports it (README: exit statuses).</summary>
public sealed record MachineExit(MachineExitKind Kind, int Status, string Detail)
{
    public const int StatusPowerOff = 0;
    public const int StatusUsageError = 2;
    public const int StatusHostError = 4;
    public const int StatusGuestCrashed = 6;
    public const int StatusMigrationFailed = 8;

    public static MachineExit PowerOff(string detail = "guest halted with interrupts disabled") => new(MachineExitKind.PowerOff, StatusPowerOff, detail);

    /// <summary>isa-debug-exit: the guest chose the status, (value &lt;&lt; 1) | 1.</summary>
    public static MachineExit DebugExit(int status) => new(MachineExitKind.DebugExit, status, $"guest wrote isa-debug-exit (status {status})");

    public static MachineExit Crashed(string report) => new(MachineExitKind.GuestCrashed, StatusGuestCrashed, report);

    public static MachineExit HostError(string detail) => new(MachineExitKind.HostError, StatusHostError, detail);

    public static MachineExit Quit(string detail = "quit requested") => new(MachineExitKind.Quit, StatusPowerOff, detail);
}

public enum MachineExitKind
{
    PowerOff,
    DebugExit,
    GuestCrashed,
    HostError,
    Quit,

    /// <summary>SIGINT or SIGTERM reached the VMM.</summary>
    Signal,
}
