using System.Runtime.InteropServices;

namespace Vmm.Linux.Kvm;

/// <summary>struct kvm_userspace_memory_region: one memslot.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmUserspaceMemoryRegion
{
    public const uint FlagLogDirtyPages = 1;
    public const uint FlagReadonly = 2;

    public uint Slot;
    public uint Flags;
    public ulong GuestPhysAddr;
    public ulong MemorySize;
    public ulong UserspaceAddr;
}
