using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>unistd.h / fcntl.h: opening, closing, reading and sizing descriptors.</summary>
public static partial class Unistd
{
    public const int O_RDONLY = 0;
    public const int O_WRONLY = 1;
    public const int O_RDWR = 2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;

    private const long SysGettid = 186;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenRaw(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static unsafe partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static unsafe partial nint Write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "ftruncate", SetLastError = true)]
    private static partial int FtruncateRaw(int fd, long length);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FallocateRaw(int fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "unlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int UnlinkRaw(string path);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall0(long number);

    [LibraryImport("libc", EntryPoint = "getpid")]
    public static partial int GetPid();

    [LibraryImport("libc", EntryPoint = "getpagesize")]
    public static partial int GetPageSize();

    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;

    /// <summary>Opens a path; throws <see cref="LinuxException"/> with the errno on failure.</summary>
    public static FileDescriptor Open(string path, int flags, int mode = 0)
    {
        int fd = OpenRaw(path, flags | O_CLOEXEC, mode);
        if (fd < 0)
        {
            throw LinuxException.FromLastError($"open {path}");
        }

        return new FileDescriptor(fd);
    }

    public static void Ftruncate(FileDescriptor fd, long length)
    {
        if (FtruncateRaw(fd.Value, length) != 0)
        {
            throw LinuxException.FromLastError("ftruncate");
        }
    }

    public static void Fallocate(FileDescriptor fd, int mode, long offset, long length)
    {
        if (FallocateRaw(fd.Value, mode, offset, length) != 0)
        {
            throw LinuxException.FromLastError("fallocate");
        }
    }

    public static void Unlink(string path)
    {
        if (UnlinkRaw(path) != 0)
        {
            throw LinuxException.FromLastError($"unlink {path}");
        }
    }

    /// <summary>The kernel thread id of the calling thread (what tgkill targets).</summary>
    public static int GetTid() => (int)Syscall0(SysGettid);
}
