using System.Runtime.InteropServices;

namespace Vmm.Linux.Kvm;

/// <summary>The fixed head of struct kvm_msrs; <see cref="KvmMsrEntry"/> items follow it in memory.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmMsrsHeader
{
    public uint NMsrs;
    public uint Pad;
}

/// <summary>struct kvm_msr_entry.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmMsrEntry
{
    public uint Index;
    public uint Reserved;
    public ulong Data;
}
