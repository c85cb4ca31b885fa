using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>
/// signal.h: masks and thread-directed signals, for kicking vCPU threads out of KVM_RUN.
/// </summary>
public static partial class Signals
{
    public const int SIGUSR1 = 10;
    public const int SIGUSR2 = 12;

    public const int SIG_BLOCK = 0;
    public const int SIG_UNBLOCK = 1;
    public const int SIG_SETMASK = 2;

    /// <summary>The kernel's sigset is 64 bits on x86-64 (what KVM_SET_SIGNAL_MASK wants).</summary>
    public const int KernelSigsetSize = 8;

    private const long SysTgkill = 234;
    private const long SysRtSigprocmask = 14;
    private const long SysRtSigtimedwait = 128;

    private static readonly nint SigIgn = 1;

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall3(long number, long a, long b, long c);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall4(long number, long a, long b, long c, long d);

    [LibraryImport("libc", EntryPoint = "signal", SetLastError = true)]
    private static partial nint SignalRaw(int signal, nint handler);

    public static ulong MaskOf(int signal) => 1ul << (signal - 1);

    /// <summary>Changes the calling thread's mask (raw syscall, 64-bit kernel sigset) and returns the old one.</summary>
    public static unsafe ulong ChangeThreadMask(int how, ulong mask)
    {
        ulong old = 0;
        if (Syscall4(SysRtSigprocmask, how, (long)&mask, (long)&old, KernelSigsetSize) != 0)
        {
            throw LinuxException.FromLastError("rt_sigprocmask");
        }

        return old;
    }

    /// <summary>Sends a signal to one thread of this process.</summary>
    public static void SendToThread(int threadId, int signal)
    {
        if (Syscall3(SysTgkill, Unistd.GetPid(), threadId, signal) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();

            // The thread may have just exited; nothing left to kick.
            if (errno != Errno.ESRCH)
            {
                throw new LinuxException("tgkill", errno);
            }
        }
    }

    /// <summary>Dequeues one pending, blocked instance of the signal without waiting; false if none was pending.</summary>
    public static unsafe bool TryConsumePending(int signal)
    {
        ulong set = MaskOf(signal);
        long* zeroTimeout = stackalloc long[2] { 0, 0 };
        long result = Syscall4(SysRtSigtimedwait, (long)&set, 0, (long)zeroTimeout, KernelSigsetSize);
        return result == signal;
    }

    /// <summary>
    /// Sets the disposition to SIG_IGN. A blocked signal is still queued (the kernel never drops a blocked signal),
    /// so this only guards against the default action (terminate) if one ever reached an unblocking thread.
    /// </summary>
    public static void Ignore(int signal)
    {
        if (SignalRaw(signal, SigIgn) == -1)
        {
            throw LinuxException.FromLastError($"signal({signal}, SIG_IGN)");
        }
    }
}
