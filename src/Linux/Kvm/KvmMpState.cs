using System.Runtime.InteropServices;

namespace Vmm.Linux.Kvm;

/// <summary>struct kvm_mp_state.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmMpState
{
    public const uint Runnable = 0;
    public const uint Halted = 3;

    public uint MpState;
}
