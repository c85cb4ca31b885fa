namespace Vmm.Accelerator;

/// <summary>Why <see cref="IVcpu.Run"/> returned.</summary>
public enum VcpuExitKind
{
    /// <summary>A port or MMIO access was handed to <see cref="IVcpuIo"/>; nothing else to do.</summary>
    Io,

    /// <summary>The vCPU was kicked (<see cref="IVcpu.Kick"/>) or interrupted: look at control requests.</summary>
    Interrupted,

    /// <summary>HLT. With interrupts disabled nothing can wake the vCPU again: the guest powered off.</summary>
    Halt,

    /// <summary>One instruction was executed under <see cref="IVcpu.SingleStep"/>.</summary>
    Debug,

    /// <summary>Triple fault: the CPU shut down.</summary>
    Shutdown,

    /// <summary>The accelerator could not go on with this guest (failed VM entry, internal error): a crash.</summary>
    Failed,

    /// <summary>The guest asked the platform to power off or reset (KVM_EXIT_SYSTEM_EVENT).</summary>
    SystemEvent,

    /// <summary>The accelerator itself failed (a host error, not the guest's doing).</summary>
    HostError,
}

/// <summary>An exit of <see cref="IVcpu.Run"/>: the kind, whether interrupts were enabled (for HLT), and words for the user.</summary>
public readonly record struct VcpuExit(VcpuExitKind Kind, bool InterruptsEnabled = false, string? Detail = null)
{
    public static readonly VcpuExit Io = new(VcpuExitKind.Io);

    public static readonly VcpuExit Interrupted = new(VcpuExitKind.Interrupted);

    public static readonly VcpuExit Debug = new(VcpuExitKind.Debug);
}
