namespace Vmm.Linux.Kvm;

/// <summary>The KVM ioctl request numbers used by the VMM (linux/kvm.h), built with the _IOC encoding.</summary>
public static unsafe class KvmIoctls
{
    public const uint KvmIo = 0xAE;

    // /dev/kvm
    public static readonly uint GetApiVersion = Ioctl.Io(KvmIo, 0x00);
    public static readonly uint CreateVm = Ioctl.Io(KvmIo, 0x01);
    public static readonly uint CheckExtension = Ioctl.Io(KvmIo, 0x03);
    public static readonly uint GetVcpuMmapSize = Ioctl.Io(KvmIo, 0x04);
    public static readonly uint GetSupportedCpuid = Ioctl.Iowr(KvmIo, 0x05, (uint)sizeof(KvmCpuid2Header));

    // VM
    public static readonly uint CreateVcpu = Ioctl.Io(KvmIo, 0x41);
    public static readonly uint GetDirtyLog = Ioctl.Iow(KvmIo, 0x42, (uint)sizeof(KvmDirtyLog));
    public static readonly uint SetUserMemoryRegion = Ioctl.Iow(KvmIo, 0x46, (uint)sizeof(KvmUserspaceMemoryRegion));
    public static readonly uint SetTssAddr = Ioctl.Io(KvmIo, 0x47);
    public static readonly uint SetIdentityMapAddr = Ioctl.Iow(KvmIo, 0x48, sizeof(ulong));
    public static readonly uint EnableCap = Ioctl.Iow(KvmIo, 0xA3, (uint)sizeof(KvmEnableCap));
    public static readonly uint ClearDirtyLog = Ioctl.Iowr(KvmIo, 0xC0, (uint)sizeof(KvmClearDirtyLog));

    // vCPU
    public static readonly uint Run = Ioctl.Io(KvmIo, 0x80);
    public static readonly uint GetRegs = Ioctl.Ior(KvmIo, 0x81, (uint)sizeof(KvmRegs));
    public static readonly uint SetRegs = Ioctl.Iow(KvmIo, 0x82, (uint)sizeof(KvmRegs));
    public static readonly uint GetSregs = Ioctl.Ior(KvmIo, 0x83, (uint)sizeof(KvmSregs));
    public static readonly uint SetSregs = Ioctl.Iow(KvmIo, 0x84, (uint)sizeof(KvmSregs));
    public static readonly uint GetMsrs = Ioctl.Iowr(KvmIo, 0x88, (uint)sizeof(KvmMsrsHeader));
    public static readonly uint SetMsrs = Ioctl.Iow(KvmIo, 0x89, (uint)sizeof(KvmMsrsHeader));
    /// <summary>KVM_INTERRUPT (struct kvm_interrupt: one __u32 vector): queue an external interrupt (userspace irqchip).</summary>
    public static readonly uint Interrupt = Ioctl.Iow(KvmIo, 0x86, sizeof(uint));
    public static readonly uint SetSignalMask = Ioctl.Iow(KvmIo, 0x8B, (uint)sizeof(KvmSignalMaskHeader));
    public static readonly uint GetFpu = Ioctl.Ior(KvmIo, 0x8C, (uint)sizeof(KvmFpu));
    public static readonly uint SetFpu = Ioctl.Iow(KvmIo, 0x8D, (uint)sizeof(KvmFpu));
    public static readonly uint SetCpuid2 = Ioctl.Iow(KvmIo, 0x90, (uint)sizeof(KvmCpuid2Header));
    public static readonly uint GetMpState = Ioctl.Ior(KvmIo, 0x98, (uint)sizeof(KvmMpState));
    public static readonly uint SetMpState = Ioctl.Iow(KvmIo, 0x99, (uint)sizeof(KvmMpState));
    public static readonly uint SetGuestDebug = Ioctl.Iow(KvmIo, 0x9B, (uint)sizeof(KvmGuestDebug));
    public static readonly uint GetVcpuEvents = Ioctl.Ior(KvmIo, 0x9F, (uint)sizeof(KvmVcpuEvents));
    public static readonly uint SetVcpuEvents = Ioctl.Iow(KvmIo, 0xA0, (uint)sizeof(KvmVcpuEvents));
    public static readonly uint GetXcrs = Ioctl.Ior(KvmIo, 0xA6, (uint)sizeof(KvmXcrs));
    public static readonly uint SetXcrs = Ioctl.Iow(KvmIo, 0xA7, (uint)sizeof(KvmXcrs));
    public static readonly uint GetTscKhz = Ioctl.Io(KvmIo, 0xA3);
}
