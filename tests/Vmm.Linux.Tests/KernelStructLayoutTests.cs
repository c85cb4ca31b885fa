using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Linux.Kvm;
using Vmm.Linux.Userfaultfd;

namespace Vmm.Linux.Tests;

/// <summary>Every struct the VMM hands the kernel has the kernel's size and field offsets.</summary>
public class KernelStructLayoutTests
{
    public static TheoryData<Type, string> Sizes => new()
    {
        { typeof(KvmRegs), "kvm_regs" },
        { typeof(KvmSegment), "kvm_segment" },
        { typeof(KvmDtable), "kvm_dtable" },
        { typeof(KvmSregs), "kvm_sregs" },
        { typeof(KvmUserspaceMemoryRegion), "kvm_userspace_memory_region" },
        { typeof(KvmDirtyLog), "kvm_dirty_log" },
        { typeof(KvmClearDirtyLog), "kvm_clear_dirty_log" },
        { typeof(KvmGuestDebug), "kvm_guest_debug" },
        { typeof(KvmFpu), "kvm_fpu" },
        { typeof(KvmMsrsHeader), "kvm_msrs" },
        { typeof(KvmMsrEntry), "kvm_msr_entry" },
        { typeof(KvmXcrs), "kvm_xcrs" },
        { typeof(KvmXcr), "kvm_xcr" },
        { typeof(KvmVcpuEvents), "kvm_vcpu_events" },
        { typeof(KvmMpState), "kvm_mp_state" },
        { typeof(KvmSignalMaskHeader), "kvm_signal_mask" },
        { typeof(KvmCpuid2Header), "kvm_cpuid2" },
        { typeof(KvmCpuidEntry2), "kvm_cpuid_entry2" },
        { typeof(KvmEnableCap), "kvm_enable_cap" },
        { typeof(UffdioApi), "uffdio_api" },
        { typeof(UffdioRange), "uffdio_range" },
        { typeof(UffdioRegister), "uffdio_register" },
        { typeof(UffdioCopy), "uffdio_copy" },
        { typeof(UffdioZeropage), "uffdio_zeropage" },
        { typeof(UffdioWriteprotect), "uffdio_writeprotect" },
        { typeof(UffdioContinue), "uffdio_continue" },
        { typeof(UffdMsg), "uffd_msg" },
        { typeof(StatBuffer), "stat" },
        { typeof(StatfsBuffer), "statfs" },
        { typeof(SocketRights.MsgHdr), "msghdr" },
        { typeof(SocketRights.CmsgHdr), "cmsghdr" },
        { typeof(SocketRights.IoVec), "iovec" },
        { typeof(Futex.Timespec), "timespec" },
    };

    public static TheoryData<Type, string, string, string> Offsets => new()
    {
        { typeof(KvmRun), nameof(KvmRun.ImmediateExit), "kvm_run", "immediate_exit" },
        { typeof(KvmRun), nameof(KvmRun.ExitReason), "kvm_run", "exit_reason" },
        { typeof(KvmRun), nameof(KvmRun.IfFlag), "kvm_run", "if_flag" },
        { typeof(KvmRun), nameof(KvmRun.Cr8), "kvm_run", "cr8" },
        { typeof(KvmRun), nameof(KvmRun.ApicBase), "kvm_run", "apic_base" },
        { typeof(KvmRun), nameof(KvmRun.Io), "kvm_run", "io" },
        { typeof(KvmRun), nameof(KvmRun.Mmio), "kvm_run", "mmio" },
        { typeof(KvmRun), nameof(KvmRun.KvmValidRegs), "kvm_run", "kvm_valid_regs" },
        { typeof(KvmRun), nameof(KvmRun.KvmDirtyRegs), "kvm_run", "kvm_dirty_regs" },
        { typeof(KvmRegs), nameof(KvmRegs.Rip), "kvm_regs", "rip" },
        { typeof(KvmRegs), nameof(KvmRegs.Rflags), "kvm_regs", "rflags" },
        { typeof(KvmRegs), nameof(KvmRegs.R8), "kvm_regs", "r8" },
        { typeof(KvmSegment), nameof(KvmSegment.Selector), "kvm_segment", "selector" },
        { typeof(KvmSegment), nameof(KvmSegment.Type), "kvm_segment", "type" },
        { typeof(KvmSegment), nameof(KvmSegment.Unusable), "kvm_segment", "unusable" },
        { typeof(KvmSregs), nameof(KvmSregs.Gdt), "kvm_sregs", "gdt" },
        { typeof(KvmSregs), nameof(KvmSregs.Cr0), "kvm_sregs", "cr0" },
        { typeof(KvmSregs), nameof(KvmSregs.Efer), "kvm_sregs", "efer" },
        { typeof(KvmSregs), nameof(KvmSregs.InterruptBitmap), "kvm_sregs", "interrupt_bitmap" },
        { typeof(KvmUserspaceMemoryRegion), nameof(KvmUserspaceMemoryRegion.GuestPhysAddr), "kvm_userspace_memory_region", "guest_phys_addr" },
        { typeof(KvmUserspaceMemoryRegion), nameof(KvmUserspaceMemoryRegion.UserspaceAddr), "kvm_userspace_memory_region", "userspace_addr" },
        { typeof(KvmDirtyLog), nameof(KvmDirtyLog.DirtyBitmap), "kvm_dirty_log", "dirty_bitmap" },
        { typeof(KvmClearDirtyLog), nameof(KvmClearDirtyLog.FirstPage), "kvm_clear_dirty_log", "first_page" },
        { typeof(KvmClearDirtyLog), nameof(KvmClearDirtyLog.DirtyBitmap), "kvm_clear_dirty_log", "dirty_bitmap" },
        { typeof(KvmGuestDebug), nameof(KvmGuestDebug.DebugReg), "kvm_guest_debug", "arch" },
        { typeof(KvmFpu), nameof(KvmFpu.LastIp), "kvm_fpu", "last_ip" },
        { typeof(KvmFpu), nameof(KvmFpu.Xmm), "kvm_fpu", "xmm" },
        { typeof(KvmFpu), nameof(KvmFpu.Mxcsr), "kvm_fpu", "mxcsr" },
        { typeof(KvmMsrEntry), nameof(KvmMsrEntry.Data), "kvm_msr_entry", "data" },
        { typeof(KvmXcrs), nameof(KvmXcrs.Xcrs), "kvm_xcrs", "xcrs" },
        { typeof(KvmVcpuEvents), nameof(KvmVcpuEvents.NmiInjected), "kvm_vcpu_events", "nmi" },
        { typeof(KvmVcpuEvents), nameof(KvmVcpuEvents.SipiVector), "kvm_vcpu_events", "sipi_vector" },
        { typeof(KvmVcpuEvents), nameof(KvmVcpuEvents.Flags), "kvm_vcpu_events", "flags" },
        { typeof(UffdioRegister), nameof(UffdioRegister.Mode), "uffdio_register", "mode" },
        { typeof(UffdioCopy), nameof(UffdioCopy.Copy), "uffdio_copy", "copy" },
        { typeof(UffdioZeropage), nameof(UffdioZeropage.Zeropage), "uffdio_zeropage", "zeropage" },
        { typeof(UffdioContinue), nameof(UffdioContinue.Mapped), "uffdio_continue", "mapped" },
        { typeof(UffdMsg), nameof(UffdMsg.PagefaultAddress), "uffd_msg", "arg.pagefault.address" },
        { typeof(UffdMsg), nameof(UffdMsg.PagefaultFlags), "uffd_msg", "arg.pagefault.flags" },
        { typeof(UffdMsg), nameof(UffdMsg.PagefaultThreadId), "uffd_msg", "arg.pagefault.feat.ptid" },
        { typeof(UffdMsg), nameof(UffdMsg.RemoveStart), "uffd_msg", "arg.remove.start" },
        { typeof(UffdMsg), nameof(UffdMsg.RemoveEnd), "uffd_msg", "arg.remove.end" },
        { typeof(StatBuffer), nameof(StatBuffer.Mode), "stat", "st_mode" },
        { typeof(StatBuffer), nameof(StatBuffer.Size), "stat", "st_size" },
        { typeof(StatBuffer), nameof(StatBuffer.BlockSize), "stat", "st_blksize" },
        { typeof(StatBuffer), nameof(StatBuffer.Blocks), "stat", "st_blocks" },
        { typeof(StatfsBuffer), nameof(StatfsBuffer.Type), "statfs", "f_type" },
        { typeof(StatfsBuffer), nameof(StatfsBuffer.BlockSize), "statfs", "f_bsize" },
        { typeof(SocketRights.MsgHdr), nameof(SocketRights.MsgHdr.Iov), "msghdr", "msg_iov" },
        { typeof(SocketRights.MsgHdr), nameof(SocketRights.MsgHdr.IovLength), "msghdr", "msg_iovlen" },
        { typeof(SocketRights.MsgHdr), nameof(SocketRights.MsgHdr.Control), "msghdr", "msg_control" },
        { typeof(SocketRights.MsgHdr), nameof(SocketRights.MsgHdr.ControlLength), "msghdr", "msg_controllen" },
        { typeof(SocketRights.MsgHdr), nameof(SocketRights.MsgHdr.Flags), "msghdr", "msg_flags" },
        { typeof(SocketRights.CmsgHdr), nameof(SocketRights.CmsgHdr.Level), "cmsghdr", "cmsg_level" },
        { typeof(SocketRights.CmsgHdr), nameof(SocketRights.CmsgHdr.Type), "cmsghdr", "cmsg_type" },
    };

    public static TheoryData<Type, string, string, string> ExitUnionOffsets => new()
    {
        { typeof(KvmRunIo), nameof(KvmRunIo.Port), "kvm_run", "io.port" },
        { typeof(KvmRunIo), nameof(KvmRunIo.Size), "kvm_run", "io.size" },
        { typeof(KvmRunIo), nameof(KvmRunIo.Count), "kvm_run", "io.count" },
        { typeof(KvmRunIo), nameof(KvmRunIo.DataOffset), "kvm_run", "io.data_offset" },
        { typeof(KvmRunMmio), nameof(KvmRunMmio.Data), "kvm_run", "mmio.data" },
        { typeof(KvmRunMmio), nameof(KvmRunMmio.Len), "kvm_run", "mmio.len" },
        { typeof(KvmRunMmio), nameof(KvmRunMmio.IsWrite), "kvm_run", "mmio.is_write" },
        { typeof(KvmRunInternal), nameof(KvmRunInternal.NData), "kvm_run", "internal.ndata" },
        { typeof(KvmRunInternal), nameof(KvmRunInternal.Data), "kvm_run", "internal.data" },
        { typeof(KvmRunDebug), nameof(KvmRunDebug.Pc), "kvm_run", "debug.arch.pc" },
        { typeof(KvmRunDebug), nameof(KvmRunDebug.Dr7), "kvm_run", "debug.arch.dr7" },
        { typeof(KvmRunFailEntry), nameof(KvmRunFailEntry.Cpu), "kvm_run", "fail_entry.cpu" },
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void StructSizeMatchesKernel(Type type, string kernelName)
    {
        Assert.Equal(KernelAbi.Size(kernelName), (ulong)Marshal.SizeOf(type));
    }

    [Theory]
    [MemberData(nameof(Offsets))]
    public void FieldOffsetMatchesKernel(Type type, string field, string kernelStruct, string kernelField)
    {
        Assert.Equal(KernelAbi.Offset(kernelStruct, kernelField), (ulong)Marshal.OffsetOf(type, field));
    }

    [Theory]
    [MemberData(nameof(ExitUnionOffsets))]
    public void ExitUnionFieldOffsetMatchesKernel(Type type, string field, string kernelStruct, string kernelField)
    {
        ulong offset = KvmRun.ExitUnionOffset + (ulong)Marshal.OffsetOf(type, field);
        Assert.Equal(KernelAbi.Offset(kernelStruct, kernelField), offset);
    }

    [Fact]
    public void KvmRunHeadEndsWhereTheSyncRegsBegin()
    {
        // The declared head covers everything up to kvm_run.s, the part the VMM never touches.
        Assert.Equal(KernelAbi.Offset("kvm_run", "s"), (ulong)Unsafe.SizeOf<KvmRun>());
    }

    [Fact]
    public void SignalMaskSigsetFollowsTheLengthWithoutPadding()
    {
        // struct kvm_signal_mask { __u32 len; __u8 sigset[]; }: the flexible array starts at sizeof the struct.
        Assert.Equal(KernelAbi.Size("kvm_signal_mask"), (ulong)Marshal.OffsetOf<KvmSignalMask>(nameof(KvmSignalMask.Sigset)));
        Assert.Equal(KernelAbi.Size("kvm_signal_mask") + Signals.KernelSigsetSize, (ulong)Marshal.SizeOf<KvmSignalMask>());
    }
}
