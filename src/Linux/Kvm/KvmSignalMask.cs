using System.Runtime.InteropServices;

namespace Vmm.Linux.Kvm;

/// <summary>The head of struct kvm_signal_mask; <see cref="Len"/> bytes of kernel sigset follow.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmSignalMaskHeader
{
    public uint Len;
}

/// <summary>
/// kvm_signal_mask with its 8-byte x86-64 kernel sigset, as one blittable block. Pack = 4 because the kernel reads
/// the sigset immediately after the 4-byte length (a flexible array), not at the next 8-byte boundary.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct KvmSignalMask
{
    public uint Len;
    public ulong Sigset;
}
