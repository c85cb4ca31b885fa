namespace Vmm.Accelerator.State;

/// <summary>
/// A vCPU's whole architectural state, the same under either accelerator — so that a guest saved on one runs on the
/// other. Migration carries it as the `cpu0` section (Vmm's VcpuStateSection: KVM's struct layout on the wire).
/// </summary>
public sealed record VcpuState
{
    public required VcpuRegisters Registers { get; init; }

    public FpuState Fpu { get; init; } = new();

    /// <summary>Extended control registers (XCR0, …); empty where the CPU has none.</summary>
    public IReadOnlyList<ExtendedControlRegister> Xcrs { get; init; } = [];

    /// <summary>Model-specific registers, the TSC (<see cref="ModelSpecificRegister.Tsc"/>) among them.</summary>
    public IReadOnlyList<ModelSpecificRegister> Msrs { get; init; } = [];

    public VcpuEvents Events { get; init; }

    public MpState MpState { get; init; } = MpState.Runnable;
}

/// <summary>An extended control register (XSETBV's XCR0, …).</summary>
public readonly record struct ExtendedControlRegister(uint Index, ulong Value);

/// <summary>A model-specific register and its value.</summary>
public readonly record struct ModelSpecificRegister(uint Index, ulong Value)
{
    /// <summary>IA32_TIME_STAMP_COUNTER: what RDTSC reads.</summary>
    public const uint Tsc = 0x10;

    /// <summary>
    /// The MSRs a vCPU's state carries (docs/migration.md, State sections): those worth migrating for these guests.
    /// KVM saves those of them its host can read; a section naming any other is refused before it reaches a vCPU.
    /// </summary>
    public static IReadOnlyList<uint> Migrated { get; } =
    [
        Tsc,
        0x3B,        // IA32_TSC_ADJUST
        0x174,       // SYSENTER_CS
        0x175,       // SYSENTER_ESP
        0x176,       // SYSENTER_EIP
        0x1A0,       // IA32_MISC_ENABLE
        0x277,       // IA32_PAT
        0xC0000081,  // STAR
        0xC0000082,  // LSTAR
        0xC0000083,  // CSTAR
        0xC0000084,  // SFMASK
        0xC0000102,  // KERNEL_GS_BASE
        0xC0000103,  // TSC_AUX
    ];
}

/// <summary>The vCPU's multiprocessing state (KVM_MP_STATE_*): running, or halted until an interrupt.</summary>
public enum MpState : uint
{
    Runnable = 0,
    Uninitialized = 1,
    InitReceived = 2,
    Halted = 3,
    SipiReceived = 4,
}
