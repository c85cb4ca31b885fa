using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>ioctl(2) and the _IOC request-number encoding of asm-generic/ioctl.h.</summary>
public static partial class Ioctl
{
    // Direction bits live at 30..31, size at 16..29, type at 8..15, number at 0..7.
    public const uint IocNone = 0;
    public const uint IocWrite = 1;
    public const uint IocRead = 2;

    public static uint Ioc(uint direction, uint type, uint number, uint size)
    {
        if (size >= 1u << 14)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "ioctl argument size does not fit in 14 bits");
        }

        return (direction << 30) | (size << 16) | (type << 8) | number;
    }

    public static uint Io(uint type, uint number) => Ioc(IocNone, type, number, 0);

    public static uint Ior(uint type, uint number, uint size) => Ioc(IocRead, type, number, size);

    public static uint Iow(uint type, uint number, uint size) => Ioc(IocWrite, type, number, size);

    public static uint Iowr(uint type, uint number, uint size) => Ioc(IocRead | IocWrite, type, number, size);

    // ioctl is variadic in C; on x86-64 passing the third argument as a fixed word is ABI-identical.
    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Invoke(int fd, nuint request, nint argument);

    /// <summary>An ioctl whose only failure mode is an exception.</summary>
    public static int Checked(FileDescriptor fd, uint request, nint argument, string name)
    {
        int result = Invoke(fd.Value, request, argument);
        if (result < 0)
        {
            throw LinuxException.FromLastError(name);
        }

        return result;
    }

    public static unsafe int Checked<T>(FileDescriptor fd, uint request, ref T argument, string name)
        where T : unmanaged
    {
        fixed (T* pointer = &argument)
        {
            return Checked(fd, request, (nint)pointer, name);
        }
    }
}
