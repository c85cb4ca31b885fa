using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>struct statfs (x86-64, 120 bytes); only the fields the VMM reads are named.</summary>
[StructLayout(LayoutKind.Explicit, Size = 120)]
public struct StatfsBuffer
{
    /// <summary>The filesystem's magic number (linux/magic.h).</summary>
    [FieldOffset(0)] public long Type;

    /// <summary>Block size; on hugetlbfs this is the huge page size of the mount.</summary>
    [FieldOffset(8)] public long BlockSize;
}

/// <summary>sys/statfs.h: fstatfs(2), used to tell a hugetlbfs mount from an ordinary directory.</summary>
public static partial class Statfs
{
    public const long HUGETLBFS_MAGIC = 0x958458f6;

    [LibraryImport("libc", EntryPoint = "fstatfs", SetLastError = true)]
    private static unsafe partial int FstatfsRaw(int fd, StatfsBuffer* buffer);

    public static unsafe StatfsBuffer Fstatfs(FileDescriptor fd)
    {
        StatfsBuffer buffer;
        bool added = false;
        fd.DangerousAddRef(ref added);
        try
        {
            if (FstatfsRaw(fd.Value, &buffer) != 0)
            {
                throw LinuxException.FromLastError("fstatfs");
            }
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }

        return buffer;
    }
}
