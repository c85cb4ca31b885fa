namespace Vmm.Accelerator.State;

/// <summary>
/// Exceptions, interrupts and NMIs in flight, and the interrupt shadow (KVM's kvm_vcpu_events, without the SMM
/// fields, which real-mode and unpaged guests never use).
/// </summary>
public record struct VcpuEvents
{
    public bool ExceptionInjected;
    public byte ExceptionVector;
    public bool ExceptionHasErrorCode;
    public bool ExceptionPending;
    public uint ExceptionErrorCode;
    public bool InterruptInjected;
    public byte InterruptVector;
    public bool InterruptSoft;

    /// <summary>Interrupts are blocked for one instruction: after STI (bit 0) or MOV SS / POP SS (bit 1).</summary>
    public byte InterruptShadow;

    public bool NmiInjected;
    public bool NmiPending;
    public bool NmiMasked;
    public uint SipiVector;
    public uint Flags;

    public const byte ShadowSti = 1;
    public const byte ShadowMovSs = 2;
}
