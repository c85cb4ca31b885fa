using Vmm.Accelerator;
using Vmm.Linux;
using Vmm.Linux.Kvm;
using Vmm.Ram;

namespace Vmm.Kvm;

/// <summary>
/// A KVM virtual machine: its memslots (<see cref="Memslots"/>, mirroring the RAM blocks), dirty log and vCPUs.
/// </summary>
public sealed class KvmVm : IAcceleratorVm
{
    // Real mode on VMX needs three pages for the TSS just below the 4 GiB BIOS area; harmless on SVM.
    private const long TssAddress = 0xFFFB_D000;

    private readonly FileDescriptor fd;
    private readonly Memslots? memslots;

    internal KvmVm(KvmSystem system, FileDescriptor fd, RamBlockRegistry? ram)
    {
        System = system;
        this.fd = fd;
        try
        {
            if (system.CheckExtension(KvmCapability.SetTssAddr) > 0)
            {
                Ioctl.Checked(fd, KvmIoctls.SetTssAddr, unchecked((nint)TssAddress), "KVM_SET_TSS_ADDR");
            }

            MaxMemslots = system.CheckExtension(KvmCapability.NrMemslots);
            SupportsReadOnlyMemory = system.CheckExtension(KvmCapability.ReadonlyMem) > 0;
            memslots = ram is null ? null : new Memslots(this, ram);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    public KvmSystem System { get; }

    public int MaxMemslots { get; }

    /// <summary>KVM_CAP_READONLY_MEM: a memslot may be KVM_MEM_READONLY (guest stores to it exit as MMIO writes).</summary>
    public bool SupportsReadOnlyMemory { get; }

    /// <summary>The memslots of a VM made for a RAM registry.</summary>
    public Memslots Memslots => memslots ?? throw new InvalidOperationException("this VM was created without guest RAM");

    IGuestMemoryMap IAcceleratorVm.Memory => Memslots;

    /// <summary>
    /// Creates, replaces (same slot id) or, with size 0, deletes a memslot. A <paramref name="readOnly"/> slot needs
    /// <see cref="SupportsReadOnlyMemory"/>.
    /// </summary>
    public void SetUserMemoryRegion(uint slot, ulong guestPhysAddr, ulong size, nint hostAddress, bool logDirtyPages, bool readOnly = false)
    {
        var region = new KvmUserspaceMemoryRegion
        {
            Slot = slot,
            Flags = (logDirtyPages ? KvmUserspaceMemoryRegion.FlagLogDirtyPages : 0) | (readOnly ? KvmUserspaceMemoryRegion.FlagReadonly : 0),
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

    /// <summary>A vCPU with the host's supported CPUID; its exits' I/O goes to <paramref name="io"/>.</summary>
    public KvmVcpu CreateVcpu(int id, IVcpuIo io)
    {
        int vcpuFd = Ioctl.Checked(fd, KvmIoctls.CreateVcpu, id, $"KVM_CREATE_VCPU {id}");
        var vcpu = new KvmVcpu(id, new FileDescriptor(vcpuFd), System.VcpuMmapSize, io);
        try
        {
            vcpu.SetCpuid(System.GetSupportedCpuid());
        }
        catch
        {
            vcpu.Dispose();
            throw;
        }

        return vcpu;
    }

    IVcpu IAcceleratorVm.CreateVcpu(int id, IVcpuIo io) => CreateVcpu(id, io);

    public void RehearseStateTransfer()
    {
        using KvmVm scratchVm = System.CreateVm();
        using KvmVcpu scratch = scratchVm.CreateVcpu(0, NoIo.Instance);
        scratch.SetState(scratch.GetState());
    }

    public void Dispose()
    {
        // KVM lets go of guest memory when the VM closes: the blocks may be unmapped only after this.
        memslots?.Dispose();
        fd.Dispose();
    }

    /// <summary>The I/O of a vCPU that never runs guest code.</summary>
    private sealed class NoIo : IVcpuIo
    {
        public static readonly NoIo Instance = new();

        public void PortRead(ushort port, Span<byte> data) => data.Fill(0xFF);

        public void PortWrite(ushort port, ReadOnlySpan<byte> data)
        {
        }

        public void MmioRead(ulong address, Span<byte> data) => data.Fill(0xFF);

        public void MmioWrite(ulong address, ReadOnlySpan<byte> data)
        {
        }
    }
}
