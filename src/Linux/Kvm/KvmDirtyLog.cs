using System.Runtime.InteropServices;

namespace Vmm.Linux.Kvm;

/// <summary>struct kvm_dirty_log: KVM_GET_DIRTY_LOG fills the bitmap (one bit per 4 KiB page of the slot).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmDirtyLog
{
    public uint Slot;
    public uint Padding;
    public nint DirtyBitmap;
}

/// <summary>struct kvm_clear_dirty_log (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmClearDirtyLog
{
    public uint Slot;
    public uint NumPages;
    public ulong FirstPage;
    public nint DirtyBitmap;
}
