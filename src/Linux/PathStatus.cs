using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>The kind of thing a path names, as lstat(2) sees it (symbolic links are not followed).</summary>
public enum PathKind
{
    Missing,
    Socket,
    SymbolicLink,
    RegularFile,
    Directory,
    Other,
}

/// <summary>
/// sys/stat.h: lstat(2). .NET has no portable way to tell a Unix socket from a regular file, and the monitor must
/// only ever replace a socket.
/// </summary>
public static partial class PathStatus
{
    private const uint S_IFMT = 0xF000;
    private const uint S_IFSOCK = 0xC000;
    private const uint S_IFLNK = 0xA000;
    private const uint S_IFREG = 0x8000;
    private const uint S_IFDIR = 0x4000;

    [LibraryImport("libc", EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int LstatRaw(string path, StatBuffer* buffer);

    /// <summary>What <paramref name="path"/> is; <see cref="PathKind.Missing"/> when it does not exist. Throws on other errors.</summary>
    public static unsafe PathKind KindOf(string path)
    {
        StatBuffer buffer;
        if (LstatRaw(path, &buffer) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Errno.ENOENT)
            {
                return PathKind.Missing;
            }

            throw new LinuxException($"lstat {path}", errno);
        }

        return (buffer.Mode & S_IFMT) switch
        {
            S_IFSOCK => PathKind.Socket,
            S_IFLNK => PathKind.SymbolicLink,
            S_IFREG => PathKind.RegularFile,
            S_IFDIR => PathKind.Directory,
            _ => PathKind.Other,
        };
    }
}
