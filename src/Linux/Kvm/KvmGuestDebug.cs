using System.Runtime.InteropServices;

namespace Vmm.Linux.Kvm;

/// <summary>struct kvm_guest_debug (x86 arch part: eight debug registers).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct KvmGuestDebug
{
    public const uint Enable = 0x00000001;
    public const uint SingleStep = 0x00000002;

    public uint Control;
    public uint Pad;
    public fixed ulong DebugReg[8];
}
