namespace Vmm.Linux.Userfaultfd;

/// <summary>Userfaultfd ioctl numbers, constants and the two ways to open one (linux/userfaultfd.h).</summary>
public static unsafe class UffdIoctls
{
    public const uint UffdIo = 0xAA;
    public const ulong UffdApi = 0xAA;

    public static readonly uint Api = Ioctl.Iowr(UffdIo, 0x3F, (uint)sizeof(UffdioApi));
    public static readonly uint Register = Ioctl.Iowr(UffdIo, 0x00, (uint)sizeof(UffdioRegister));
    public static readonly uint Unregister = Ioctl.Ior(UffdIo, 0x01, (uint)sizeof(UffdioRange));
    public static readonly uint Wake = Ioctl.Ior(UffdIo, 0x02, (uint)sizeof(UffdioRange));
    public static readonly uint Copy = Ioctl.Iowr(UffdIo, 0x03, (uint)sizeof(UffdioCopy));
    public static readonly uint ZeroPage = Ioctl.Iowr(UffdIo, 0x04, (uint)sizeof(UffdioZeropage));
    public static readonly uint WriteProtect = Ioctl.Iowr(UffdIo, 0x06, (uint)sizeof(UffdioWriteprotect));
    public static readonly uint Continue = Ioctl.Iowr(UffdIo, 0x07, (uint)sizeof(UffdioContinue));

    /// <summary>USERFAULTFD_IOC_NEW on /dev/userfaultfd.</summary>
    public static readonly uint DevNew = Ioctl.Io(UffdIo, 0x00);

    public const ulong RegisterModeMissing = 1;
    public const ulong RegisterModeWp = 2;
    public const ulong RegisterModeMinor = 4;

    public const ulong CopyModeDontWake = 1;
    public const ulong CopyModeWp = 2;
    public const ulong ZeropageModeDontWake = 1;
    public const ulong ContinueModeDontWake = 1;
    public const ulong WriteProtectModeWp = 1;
    public const ulong WriteProtectModeDontWake = 2;

    public const byte EventPagefault = 0x12;
    public const byte EventFork = 0x13;
    public const byte EventRemap = 0x14;
    public const byte EventRemove = 0x15;
    public const byte EventUnmap = 0x16;

    public const ulong PagefaultFlagWrite = 1;
    public const ulong PagefaultFlagWp = 2;
    public const ulong PagefaultFlagMinor = 4;

    /// <summary>Bits of <see cref="UffdioRegister.Ioctls"/> / <see cref="UffdioApi.Ioctls"/>: 1 &lt;&lt; _UFFDIO_x.</summary>
    public const ulong IoctlBitCopy = 1ul << 0x03;
    public const ulong IoctlBitZeroPage = 1ul << 0x04;
    public const ulong IoctlBitWriteProtect = 1ul << 0x06;
    public const ulong IoctlBitContinue = 1ul << 0x07;

    public const int SysUserfaultfd = 323;
}

/// <summary>
/// UFFD_FEATURE_* bits negotiated through UFFDIO_API. POISON and MOVE postdate the Debian 12 headers the ABI test
/// compiles against, so those two are pinned by the kernel source (linux/userfaultfd.h, 6.4+) rather than by the test.
/// </summary>
[Flags]
public enum UffdFeatures : ulong
{
    None = 0,
    PagefaultFlagWp = 1ul << 0,
    EventFork = 1ul << 1,
    EventRemap = 1ul << 2,
    EventRemove = 1ul << 3,
    MissingHugetlbfs = 1ul << 4,
    MissingShmem = 1ul << 5,
    EventUnmap = 1ul << 6,
    Sigbus = 1ul << 7,
    ThreadId = 1ul << 8,
    MinorHugetlbfs = 1ul << 9,
    MinorShmem = 1ul << 10,
    ExactAddress = 1ul << 11,
    WpHugetlbfsShmem = 1ul << 12,
    WpUnpopulated = 1ul << 13,
    Poison = 1ul << 14,
    WpAsync = 1ul << 15,
    Move = 1ul << 16,
}
