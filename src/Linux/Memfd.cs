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

    [LibraryImport("libc", EntryPoint = "memfd_create", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MemfdCreateRaw(string name, uint flags);

    public static FileDescriptor Create(string name, uint flags)
    {
        int fd = MemfdCreateRaw(name, flags | MFD_CLOEXEC);
        if (fd < 0)
        {
            throw LinuxException.FromLastError($"memfd_create {name}");
        }

        return new FileDescriptor(fd);
    }
}
