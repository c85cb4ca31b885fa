using System.Runtime.InteropServices;

namespace Vmm.Linux.Kvm;

/// <summary>The fixed head of struct kvm_cpuid2; <see cref="KvmCpuidEntry2"/> items follow.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmCpuid2Header
{
    public uint Nent;
    public uint Padding;
}

/// <summary>struct kvm_cpuid_entry2.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct KvmCpuidEntry2
{
    public uint Function;
    public uint Index;
    public uint Flags;
    public uint Eax, Ebx, Ecx, Edx;
    public fixed uint Padding[3];
}
