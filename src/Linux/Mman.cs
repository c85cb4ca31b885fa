using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>sys/mman.h: mappings and advice.</summary>
public static partial class Mman
{
    public const int PROT_NONE = 0;
    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;
    public const int PROT_EXEC = 4;

    public const int MAP_SHARED = 0x01;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_FIXED = 0x10;
    public const int MAP_ANONYMOUS = 0x20;
    public const int MAP_NORESERVE = 0x4000;
    public const int MAP_POPULATE = 0x8000;
    public const int MAP_HUGETLB = 0x40000;
    public const int MAP_FIXED_NOREPLACE = 0x100000;

    public const int MADV_DONTNEED = 4;
    public const int MADV_REMOVE = 9;
    public const int MADV_DONTFORK = 10;
    public const int MADV_HUGEPAGE = 14;
    public const int MADV_NOHUGEPAGE = 15;

    public static readonly nint MapFailed = -1;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint MmapRaw(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int MunmapRaw(nint address, nuint length);

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int MadviseRaw(nint address, nuint length, int advice);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int MprotectRaw(nint address, nuint length, int protection);

    public static nint Map(nint address, ulong length, int protection, int flags, int fd = -1, long offset = 0)
    {
        nint result = MmapRaw(address, (nuint)length, protection, flags, fd, offset);
        if (result == MapFailed)
        {
            throw LinuxException.FromLastError($"mmap {length} bytes");
        }

        return result;
    }

    public static void Unmap(nint address, ulong length)
    {
        if (MunmapRaw(address, (nuint)length) != 0)
        {
            throw LinuxException.FromLastError("munmap");
        }
    }

    public static void Advise(nint address, ulong length, int advice)
    {
        if (MadviseRaw(address, (nuint)length, advice) != 0)
        {
            throw LinuxException.FromLastError($"madvise({advice})");
        }
    }

    public static void Protect(nint address, ulong length, int protection)
    {
        if (MprotectRaw(address, (nuint)length, protection) != 0)
        {
            throw LinuxException.FromLastError("mprotect");
        }
    }
}
