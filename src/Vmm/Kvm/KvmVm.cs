using Vmm.Linux;
using Vmm.Linux.Kvm;

namespace Vmm.Kvm;

/// <summary>A KVM virtual machine: its memslots, dirty log and vCPUs. Knows addresses, not RAM blocks.</summary>
public sealed class KvmVm : IDisposable
{
    // Real mode on VMX needs three pages for the TSS just below the 4 GiB BIOS area; harmless on SVM.
    private const long TssAddress = 0xFFFB_D000;

    private readonly FileDescriptor fd;

    internal KvmVm(KvmSystem system, FileDescriptor fd)
    {
        System = system;
        this.fd = fd;
        if (system.CheckExtension(KvmCapability.SetTssAddr) > 0)
        {
            Ioctl.Checked(fd, KvmIoctls.SetTssAddr, unchecked((nint)TssAddress), "KVM_SET_TSS_ADDR");
        }

        MaxMemslots = system.CheckExtension(KvmCapability.NrMemslots);
    }

    public KvmSystem System { get; }

    public int MaxMemslots { get; }

    /// <summary>Creates, replaces (same slot id) or, with size 0, deletes a memslot.</summary>
    public void SetUserMemoryRegion(uint slot, ulong guestPhysAddr, ulong size, nint hostAddress, bool logDirtyPages)
    {
        var region = new KvmUserspaceMemoryRegion
        {
            Slot = slot,
            Flags = logDirtyPages ? KvmUserspaceMemoryRegion.FlagLogDirtyPages : 0,
            GuestPhysAddr = guestPhysAddr,
            MemorySize = size,
            UserspaceAddr = (ulong)hostAddress,
        };
        Ioctl.Checked(fd, KvmIoctls.SetUserMemoryRegion, ref region, $"KVM_SET_USER_MEMORY_REGION slot {slot}");
    }

    /// <summary>
    /// KVM_GET_DIRTY_LOG: fetches and clears the slot's dirty bitmap (one bit per 4 KiB page, 64-bit words).
    /// </summary>
    public unsafe void GetDirtyLog(uint slot, ulong[] bitmap)
    {
        fixed (ulong* pointer = bitmap)
        {
            var log = new KvmDirtyLog { Slot = slot, DirtyBitmap = (nint)pointer };
            Ioctl.Checked(fd, KvmIoctls.GetDirtyLog, ref log, $"KVM_GET_DIRTY_LOG slot {slot}");
        }
    }

    public KvmVcpu CreateVcpu(int id)
    {
        int vcpuFd = Ioctl.Checked(fd, KvmIoctls.CreateVcpu, id, $"KVM_CREATE_VCPU {id}");
        return new KvmVcpu(id, new FileDescriptor(vcpuFd), System.VcpuMmapSize);
    }

    public void Dispose() => fd.Dispose();
}
