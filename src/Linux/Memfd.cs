using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>memfd_create(2): anonymous files for shared and hugetlb guest RAM.</summary>
public static partial class Memfd
{
    public const uint MFD_CLOEXEC = 0x0001;
    public const uint MFD_ALLOW_SEALING = 0x0002;
    public const uint MFD_HUGETLB = 0x0004;

    // MFD_HUGE_2MB = 21 << MFD_HUGE_SHIFT (26): the page size is encoded as log2 in the flags.
    public const uint MFD_HUGE_2MB = 21u << 26;

    // fcntl(2) file seals: once a memfd is sealed against shrinking, a process that maps it cannot be killed by
    // SIGBUS because another one truncated it.
    public const int F_ADD_SEALS = 1033;
    public const int F_GET_SEALS = 1034;
    public const int F_SEAL_SEAL = 0x0001;
    public const int F_SEAL_SHRINK = 0x0002;
    public const int F_SEAL_GROW = 0x0004;

    [LibraryImport("libc", EntryPoint = "memfd_create", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MemfdCreateRaw(string name, uint flags);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int FcntlRaw(int fd, int command, int argument);

    public static FileDescriptor Create(string name, uint flags)
    {
        int fd = MemfdCreateRaw(name, flags | MFD_CLOEXEC);
        if (fd < 0)
        {
            throw LinuxException.FromLastError($"memfd_create {name}");
        }

        return new FileDescriptor(fd);
    }

    /// <summary>Adds seals to a memfd created with <see cref="MFD_ALLOW_SEALING"/>.</summary>
    public static void AddSeals(FileDescriptor fd, int seals)
    {
        if (FcntlRaw(fd.Value, F_ADD_SEALS, seals) != 0)
        {
            throw LinuxException.FromLastError("fcntl F_ADD_SEALS");
        }
    }

    /// <summary>The seals of a file (0 for a memfd never sealed; EINVAL for files that cannot be sealed).</summary>
    public static int GetSeals(FileDescriptor fd)
    {
        int seals = FcntlRaw(fd.Value, F_GET_SEALS, 0);
        if (seals < 0)
        {
            throw LinuxException.FromLastError("fcntl F_GET_SEALS");
        }

        return seals;
    }
}
