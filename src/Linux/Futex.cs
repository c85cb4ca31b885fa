using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>
/// futex(2), the shared (not process-private) operations: a 32-bit word in a MAP_SHARED mapping is one futex for every
/// process that maps it, so one side can sleep on it and the other wake it without a socket in between.
/// </summary>
public static partial class Futex
{
    public const int FUTEX_WAIT = 0;
    public const int FUTEX_WAKE = 1;

    public const long SysFutex = 202;

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static unsafe partial long Syscall6(long number, int* address, int operation, int value, Timespec* timeout, nint address2, int value3);

    /// <summary>struct timespec (x86-64): relative timeout for FUTEX_WAIT.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    /// <summary>
    /// Sleeps while <c>*address == expected</c>, at most <paramref name="timeout"/>. Returns at once if the word already
    /// differs (EAGAIN); a wake, a timeout or a signal all just return: the caller rechecks its condition.
    /// </summary>
    public static unsafe void Wait(int* address, int expected, TimeSpan timeout)
    {
        long ticks = Math.Max(0, timeout.Ticks);
        var relative = new Timespec { Seconds = ticks / TimeSpan.TicksPerSecond, Nanoseconds = ticks % TimeSpan.TicksPerSecond * 100 };
        if (Syscall6(SysFutex, address, FUTEX_WAIT, expected, &relative, 0, 0) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno is not (Errno.EAGAIN or Errno.ETIMEDOUT or Errno.EINTR))
            {
                throw new LinuxException("futex wait", errno);
            }
        }
    }

    /// <summary>Wakes up to <paramref name="count"/> sleepers on the word; returns how many were woken.</summary>
    public static unsafe int Wake(int* address, int count)
    {
        long woken = Syscall6(SysFutex, address, FUTEX_WAKE, count, null, 0, 0);
        if (woken < 0)
        {
            throw LinuxException.FromLastError("futex wake");
        }

        return (int)woken;
    }
}
