using Vmm.Linux.Kvm;
using Vmm.Linux.Userfaultfd;

namespace Vmm.Linux.Tests;

/// <summary>Request numbers, capability numbers and flags match the kernel headers bit for bit.</summary>
public class IoctlNumberTests
{
    public static TheoryData<string, ulong> Numbers => new()
    {
        { "KVM_GET_API_VERSION", KvmIoctls.GetApiVersion },
        { "KVM_CREATE_VM", KvmIoctls.CreateVm },
        { "KVM_CHECK_EXTENSION", KvmIoctls.CheckExtension },
        { "KVM_GET_VCPU_MMAP_SIZE", KvmIoctls.GetVcpuMmapSize },
        { "KVM_GET_SUPPORTED_CPUID", KvmIoctls.GetSupportedCpuid },
        { "KVM_CREATE_VCPU", KvmIoctls.CreateVcpu },
        { "KVM_GET_DIRTY_LOG", KvmIoctls.GetDirtyLog },
        { "KVM_SET_USER_MEMORY_REGION", KvmIoctls.SetUserMemoryRegion },
        { "KVM_SET_TSS_ADDR", KvmIoctls.SetTssAddr },
        { "KVM_SET_IDENTITY_MAP_ADDR", KvmIoctls.SetIdentityMapAddr },
        { "KVM_ENABLE_CAP", KvmIoctls.EnableCap },
        { "KVM_CLEAR_DIRTY_LOG", KvmIoctls.ClearDirtyLog },
        { "KVM_RUN", KvmIoctls.Run },
        { "KVM_GET_REGS", KvmIoctls.GetRegs },
        { "KVM_SET_REGS", KvmIoctls.SetRegs },
        { "KVM_GET_SREGS", KvmIoctls.GetSregs },
        { "KVM_SET_SREGS", KvmIoctls.SetSregs },
        { "KVM_GET_MSRS", KvmIoctls.GetMsrs },
        { "KVM_SET_MSRS", KvmIoctls.SetMsrs },
        { "KVM_SET_SIGNAL_MASK", KvmIoctls.SetSignalMask },
        { "KVM_GET_FPU", KvmIoctls.GetFpu },
        { "KVM_SET_FPU", KvmIoctls.SetFpu },
        { "KVM_SET_CPUID2", KvmIoctls.SetCpuid2 },
        { "KVM_GET_MP_STATE", KvmIoctls.GetMpState },
        { "KVM_SET_MP_STATE", KvmIoctls.SetMpState },
        { "KVM_SET_GUEST_DEBUG", KvmIoctls.SetGuestDebug },
        { "KVM_INTERRUPT", KvmIoctls.Interrupt },
        { "KVM_GET_VCPU_EVENTS", KvmIoctls.GetVcpuEvents },
        { "KVM_SET_VCPU_EVENTS", KvmIoctls.SetVcpuEvents },
        { "KVM_GET_XCRS", KvmIoctls.GetXcrs },
        { "KVM_SET_XCRS", KvmIoctls.SetXcrs },
        { "KVM_GET_TSC_KHZ", KvmIoctls.GetTscKhz },
        { "UFFDIO_API", UffdIoctls.Api },
        { "UFFDIO_REGISTER", UffdIoctls.Register },
        { "UFFDIO_UNREGISTER", UffdIoctls.Unregister },
        { "UFFDIO_WAKE", UffdIoctls.Wake },
        { "UFFDIO_COPY", UffdIoctls.Copy },
        { "UFFDIO_ZEROPAGE", UffdIoctls.ZeroPage },
        { "UFFDIO_WRITEPROTECT", UffdIoctls.WriteProtect },
        { "UFFDIO_CONTINUE", UffdIoctls.Continue },
        { "USERFAULTFD_IOC_NEW", UffdIoctls.DevNew },
    };

    public static TheoryData<string, ulong> Constants => new()
    {
        { "KVM_EXIT_IO", (ulong)KvmExitReason.Io },
        { "KVM_EXIT_HLT", (ulong)KvmExitReason.Hlt },
        { "KVM_EXIT_MMIO", (ulong)KvmExitReason.Mmio },
        { "KVM_EXIT_SHUTDOWN", (ulong)KvmExitReason.Shutdown },
        { "KVM_EXIT_FAIL_ENTRY", (ulong)KvmExitReason.FailEntry },
        { "KVM_EXIT_INTR", (ulong)KvmExitReason.Intr },
        { "KVM_EXIT_INTERNAL_ERROR", (ulong)KvmExitReason.InternalError },
        { "KVM_EXIT_DEBUG", (ulong)KvmExitReason.Debug },
        { "KVM_EXIT_SYSTEM_EVENT", (ulong)KvmExitReason.SystemEvent },
        { "KVM_CAP_USER_MEMORY", (ulong)KvmCapability.UserMemory },
        { "KVM_CAP_SET_TSS_ADDR", (ulong)KvmCapability.SetTssAddr },
        { "KVM_CAP_NR_MEMSLOTS", (ulong)KvmCapability.NrMemslots },
        { "KVM_CAP_SET_GUEST_DEBUG", (ulong)KvmCapability.SetGuestDebug },
        { "KVM_CAP_IMMEDIATE_EXIT", (ulong)KvmCapability.ImmediateExit },
        { "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2", (ulong)KvmCapability.ManualDirtyLogProtect2 },
        { "KVM_CAP_XCRS", (ulong)KvmCapability.Xcrs },
        { "KVM_CAP_VCPU_EVENTS", (ulong)KvmCapability.VcpuEvents },
        { "KVM_CAP_MP_STATE", (ulong)KvmCapability.MpState },
        { "KVM_CAP_EXT_CPUID", (ulong)KvmCapability.ExtCpuid },
        { "KVM_CAP_DIRTY_LOG_RING", (ulong)KvmCapability.DirtyLogRing },
        { "KVM_CAP_READONLY_MEM", (ulong)KvmCapability.ReadonlyMem },
        { "KVM_MEM_LOG_DIRTY_PAGES", KvmUserspaceMemoryRegion.FlagLogDirtyPages },
        { "KVM_MEM_READONLY", KvmUserspaceMemoryRegion.FlagReadonly },
        { "KVM_GUESTDBG_ENABLE", KvmGuestDebug.Enable },
        { "KVM_GUESTDBG_SINGLESTEP", KvmGuestDebug.SingleStep },
        { "UFFD_API", UffdIoctls.UffdApi },
        { "UFFD_EVENT_PAGEFAULT", UffdIoctls.EventPagefault },
        { "UFFD_EVENT_REMOVE", UffdIoctls.EventRemove },
        { "UFFD_EVENT_UNMAP", UffdIoctls.EventUnmap },
        { "UFFDIO_REGISTER_MODE_MISSING", UffdIoctls.RegisterModeMissing },
        { "UFFDIO_REGISTER_MODE_WP", UffdIoctls.RegisterModeWp },
        { "UFFDIO_REGISTER_MODE_MINOR", UffdIoctls.RegisterModeMinor },
        { "UFFD_FEATURE_MISSING_HUGETLBFS", (ulong)UffdFeatures.MissingHugetlbfs },
        { "UFFD_FEATURE_MISSING_SHMEM", (ulong)UffdFeatures.MissingShmem },
        { "UFFD_FEATURE_MINOR_SHMEM", (ulong)UffdFeatures.MinorShmem },
        { "UFFD_FEATURE_MINOR_HUGETLBFS", (ulong)UffdFeatures.MinorHugetlbfs },
        { "UFFD_FEATURE_EVENT_REMOVE", (ulong)UffdFeatures.EventRemove },
        { "UFFD_FEATURE_THREAD_ID", (ulong)UffdFeatures.ThreadId },
        { "UFFD_FEATURE_EXACT_ADDRESS", (ulong)UffdFeatures.ExactAddress },
        { "UFFD_FEATURE_WP_HUGETLBFS_SHMEM", (ulong)UffdFeatures.WpHugetlbfsShmem },
        { "UFFD_PAGEFAULT_FLAG_WRITE", UffdIoctls.PagefaultFlagWrite },
        { "UFFD_PAGEFAULT_FLAG_MINOR", UffdIoctls.PagefaultFlagMinor },
        { "UFFDIO_COPY_MODE_DONTWAKE", UffdIoctls.CopyModeDontWake },
        { "MAP_SHARED", Mman.MAP_SHARED },
        { "MAP_PRIVATE", Mman.MAP_PRIVATE },
        { "MAP_FIXED", Mman.MAP_FIXED },
        { "MAP_ANONYMOUS", Mman.MAP_ANONYMOUS },
        { "MAP_NORESERVE", Mman.MAP_NORESERVE },
        { "MAP_HUGETLB", Mman.MAP_HUGETLB },
        { "MAP_FIXED_NOREPLACE", Mman.MAP_FIXED_NOREPLACE },
        { "MADV_DONTNEED", Mman.MADV_DONTNEED },
        { "MADV_REMOVE", Mman.MADV_REMOVE },
        { "FALLOC_FL_PUNCH_HOLE", Unistd.FALLOC_FL_PUNCH_HOLE },
        { "FALLOC_FL_KEEP_SIZE", Unistd.FALLOC_FL_KEEP_SIZE },
        { "MFD_HUGETLB", Memfd.MFD_HUGETLB },
        { "MFD_HUGE_2MB", Memfd.MFD_HUGE_2MB },
        { "MFD_CLOEXEC", Memfd.MFD_CLOEXEC },
        { "O_CLOEXEC", Unistd.O_CLOEXEC },
        { "O_NONBLOCK", Unistd.O_NONBLOCK },
        { "O_RDWR", Unistd.O_RDWR },
        { "O_CREAT", Unistd.O_CREAT },
        { "SYS_userfaultfd", UffdIoctls.SysUserfaultfd },
        { "SIGUSR2", Signals.SIGUSR2 },
        { "SOL_SOCKET", SocketRights.SOL_SOCKET },
        { "SCM_RIGHTS", SocketRights.SCM_RIGHTS },
        { "MSG_CTRUNC", SocketRights.MSG_CTRUNC },
        { "MSG_CMSG_CLOEXEC", SocketRights.MSG_CMSG_CLOEXEC },
        { "CMSG_SPACE(sizeof(int))", SocketRights.OneDescriptorSpace },
        { "CMSG_LEN(sizeof(int))", SocketRights.OneDescriptorLength },
        { "SYS_futex", (ulong)Futex.SysFutex },
        { "FUTEX_WAIT", Futex.FUTEX_WAIT },
        { "FUTEX_WAKE", Futex.FUTEX_WAKE },
        { "MFD_ALLOW_SEALING", Memfd.MFD_ALLOW_SEALING },
        { "F_ADD_SEALS", Memfd.F_ADD_SEALS },
        { "F_GET_SEALS", Memfd.F_GET_SEALS },
        { "F_SEAL_SEAL", Memfd.F_SEAL_SEAL },
        { "F_SEAL_SHRINK", Memfd.F_SEAL_SHRINK },
        { "F_SEAL_GROW", Memfd.F_SEAL_GROW },
        { "HUGETLBFS_MAGIC", (ulong)Statfs.HUGETLBFS_MAGIC },
    };

    [Theory]
    [MemberData(nameof(Numbers))]
    public void IoctlNumberMatchesKernel(string name, ulong ours) => Assert.Equal(KernelAbi.Value(name), ours);

    [Theory]
    [MemberData(nameof(Constants))]
    public void ConstantMatchesKernel(string name, ulong ours) => Assert.Equal(KernelAbi.Value(name), ours);

    [Theory]
    [InlineData(0u, 0xAEu, 0x80u, 0u, 0xAE80u)]
    [InlineData(1u, 0xAEu, 0x46u, 32u, 0x4020AE46u)]
    [InlineData(2u, 0xAEu, 0x81u, 144u, 0x8090AE81u)]
    [InlineData(3u, 0xAAu, 0x3Fu, 24u, 0xC018AA3Fu)]
    public void IocEncodingPacksDirectionSizeTypeNumber(uint direction, uint type, uint number, uint size, uint expected)
    {
        Assert.Equal(expected, Ioctl.Ioc(direction, type, number, size));
    }

    [Fact]
    public void IocRejectsSizesBeyondFourteenBits()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Ioctl.Ioc(Ioctl.IocRead, 0xAE, 1, 1u << 14));
    }
}
