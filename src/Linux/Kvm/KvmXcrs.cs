using System.Runtime.InteropServices;

namespace Vmm.Linux.Kvm;

/// <summary>struct kvm_xcr.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmXcr
{
    public uint Xcr;
    public uint Reserved;
    public ulong Value;
}

/// <summary>struct kvm_xcrs: up to 16 extended control registers.</summary>
[StructLayout(LayoutKind.Sequential, Size = 392)]
public struct KvmXcrs
{
    public const int MaxXcrs = 16;

    public uint NrXcrs;
    public uint Flags;
    public KvmXcrArray Xcrs;
}

/// <summary>The fixed array of 16 <see cref="KvmXcr"/>, followed in the kernel struct by 128 bytes of padding.</summary>
[System.Runtime.CompilerServices.InlineArray(KvmXcrs.MaxXcrs)]
public struct KvmXcrArray
{
    private KvmXcr element;
}
