using System.Runtime.InteropServices;

namespace Vmm.Linux.Kvm;

/// <summary>
/// struct kvm_vcpu_events: pending exceptions, interrupts, NMIs and SMM state. Migrated as an opaque 64-byte blob,
/// so only the layout's size matters to the VMM; the leading fields are named for diagnostics.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct KvmVcpuEvents
{
    [FieldOffset(0)] public byte ExceptionInjected;
    [FieldOffset(1)] public byte ExceptionNr;
    [FieldOffset(2)] public byte ExceptionHasErrorCode;
    [FieldOffset(3)] public byte ExceptionPending;
    [FieldOffset(4)] public uint ExceptionErrorCode;
    [FieldOffset(8)] public byte InterruptInjected;
    [FieldOffset(9)] public byte InterruptNr;
    [FieldOffset(10)] public byte InterruptSoft;
    [FieldOffset(11)] public byte InterruptShadow;
    [FieldOffset(12)] public byte NmiInjected;
    [FieldOffset(13)] public byte NmiPending;
    [FieldOffset(14)] public byte NmiMasked;
    [FieldOffset(16)] public uint SipiVector;
    [FieldOffset(20)] public uint Flags;
}
