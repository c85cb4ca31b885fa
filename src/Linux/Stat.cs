using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>struct stat (x86-64, 144 bytes); only the fields the VMM reads are named.</summary>
[StructLayout(LayoutKind.Explicit, Size = 144)]
public struct StatBuffer
{
    [FieldOffset(24)] public uint Mode;
    [FieldOffset(48)] public long Size;
    [FieldOffset(56)] public long BlockSize;

    /// <summary>Allocated 512-byte blocks: how much memory a memfd or hugetlbfs file really holds.</summary>
    [FieldOffset(64)] public long Blocks;
}

/// <summary>sys/stat.h: fstat(2).</summary>
public static partial class Stat
{
    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static unsafe partial int FstatRaw(int fd, StatBuffer* buffer);

    public static unsafe StatBuffer Fstat(FileDescriptor fd)
    {
        StatBuffer buffer;
        bool added = false;
        fd.DangerousAddRef(ref added);
        try
        {
            if (FstatRaw(fd.Value, &buffer) != 0)
            {
                throw LinuxException.FromLastError("fstat");
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
