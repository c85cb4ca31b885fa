using System.Runtime.InteropServices;

namespace Vmm.Linux.Userfaultfd;

/// <summary>The userfaultfd(2) system call, which glibc does not wrap: the fallback when /dev/userfaultfd is absent.</summary>
public static partial class UffdSyscall
{
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall1(long number, long argument);

    /// <summary>userfaultfd(flags); flags are O_CLOEXEC / O_NONBLOCK (and UFFD_USER_MODE_ONLY, which the VMM never wants).</summary>
    public static FileDescriptor Create(int flags)
    {
        long fd = Syscall1(UffdIoctls.SysUserfaultfd, flags);
        if (fd < 0)
        {
            throw LinuxException.FromLastError("userfaultfd");
        }

        return new FileDescriptor((int)fd);
    }
}
