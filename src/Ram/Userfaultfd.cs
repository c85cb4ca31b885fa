using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Linux;
using Vmm.Linux.Userfaultfd;

namespace Vmm.Ram;

/// <summary>
/// A userfaultfd: register ranges, read faults, place pages. Placement and fault reading are the postcopy hot path:
/// they neither allocate nor throw for the outcomes a postcopy loop expects (see <see cref="PlacementStatus"/>).
/// </summary>
/// <remarks>
/// All members may be called from any thread. Fault reading wants a non-blocking descriptor (the default): the
/// kernel answers poll() on a blocking userfaultfd with POLLERR.
/// </remarks>
public sealed unsafe class Userfaultfd : IDisposable
{
    private const string DevicePath = "/dev/userfaultfd";

    // A read(2) returns at most this many messages; it bounds the stack buffer of ReadFaults.
    private const int MaxMessagesPerRead = 128;

    // Between two empty non-blocking reads: long enough not to hammer the syscall, short next to the ~37 µs fault cost.
    private const int SpinIterationsBetweenReads = 20;

    private readonly FileDescriptor fd;

    private Userfaultfd(FileDescriptor fd, UffdFeatures features, UffdFeatures availableFeatures, bool nonBlocking)
    {
        this.fd = fd;
        Features = features;
        AvailableFeatures = availableFeatures;
        IsNonBlocking = nonBlocking;
    }

    /// <summary>The features enabled on this descriptor: the required ones plus whichever optional ones the kernel has.</summary>
    public UffdFeatures Features { get; }

    /// <summary>Every feature this kernel offers, enabled or not.</summary>
    public UffdFeatures AvailableFeatures { get; }

    public bool IsNonBlocking { get; }

    /// <summary>The descriptor itself, e.g. for an external event loop.</summary>
    public FileDescriptor Fd => fd;

    /// <summary>
    /// Opens a userfaultfd (through /dev/userfaultfd, falling back to the system call) and negotiates features.
    /// Throws <see cref="UserfaultfdException"/> naming every <paramref name="required"/> feature the kernel lacks.
    /// </summary>
    public static Userfaultfd Open(UffdFeatures required, UffdFeatures optional = UffdFeatures.None, bool nonBlocking = true)
    {
        // A failed UFFDIO_API zeroes its answer and a successful one cannot be repeated, so learn what the kernel
        // offers on a throwaway descriptor first, then ask the real one for exactly what we will use.
        UffdFeatures available;
        using (FileDescriptor probe = OpenDescriptor(nonBlocking: true))
        {
            available = Handshake(probe, UffdFeatures.None);
        }

        UffdFeatures missing = required & ~available;
        if (missing != UffdFeatures.None)
        {
            throw new UserfaultfdException(missing, available);
        }

        UffdFeatures wanted = required | (optional & available);
        FileDescriptor fd = OpenDescriptor(nonBlocking);
        try
        {
            Handshake(fd, wanted);
            return new Userfaultfd(fd, wanted, available, nonBlocking);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>The features a registration of <paramref name="modes"/> on a block of <paramref name="backend"/> needs.</summary>
    public static UffdFeatures RequiredFeatures(RamBackend backend, UffdRegisterModes modes)
    {
        UffdFeatures features = UffdFeatures.None;
        if ((modes & UffdRegisterModes.Missing) != 0)
        {
            features |= backend switch
            {
                RamBackend.Shared => UffdFeatures.MissingShmem,
                RamBackend.Hugetlbfs => UffdFeatures.MissingHugetlbfs,
                _ => UffdFeatures.None,
            };
        }

        if ((modes & UffdRegisterModes.Minor) != 0)
        {
            features |= backend switch
            {
                RamBackend.Shared => UffdFeatures.MinorShmem,
                RamBackend.Hugetlbfs => UffdFeatures.MinorHugetlbfs,
                _ => throw new ArgumentException("minor faults need page-cache-backed memory: a shared or hugetlbfs block, not anonymous", nameof(modes)),
            };
        }

        if ((modes & UffdRegisterModes.WriteProtect) != 0)
        {
            features |= UffdFeatures.PagefaultFlagWp | (backend == RamBackend.Anonymous ? UffdFeatures.None : UffdFeatures.WpHugetlbfsShmem);
        }

        return features;
    }

    /// <summary>Registers [start, start+length) for <paramref name="modes"/>; returns the ioctls the range now supports.</summary>
    public UffdRangeIoctls Register(nint start, ulong length, UffdRegisterModes modes)
    {
        var register = new UffdioRegister
        {
            Range = new UffdioRange { Start = (ulong)start, Len = length },
            Mode = (ulong)modes,
        };
        int errno = Invoke(UffdIoctls.Register, &register);
        if (errno != 0)
        {
            throw new LinuxException($"UFFDIO_REGISTER 0x{start:x}+0x{length:x} ({modes})", errno);
        }

        return (UffdRangeIoctls)register.Ioctls;
    }

    /// <summary>Unregisters a range; parts that lost their registration already (remap) are silently skipped. Wakes waiters.</summary>
    public void Unregister(nint start, ulong length)
    {
        var range = new UffdioRange { Start = (ulong)start, Len = length };
        int errno = Invoke(UffdIoctls.Unregister, &range);
        if (errno != 0)
        {
            throw new LinuxException($"UFFDIO_UNREGISTER 0x{start:x}+0x{length:x}", errno);
        }
    }

    /// <summary>Atomically fills missing pages at <paramref name="destination"/> with bytes from <paramref name="source"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public PlacementResult Copy(nint destination, nint source, ulong length, bool wake = true)
    {
        CheckPlacement(destination, length);
        var copy = new UffdioCopy
        {
            Dst = (ulong)destination,
            Src = (ulong)source,
            Len = length,
            Mode = wake ? 0 : UffdIoctls.CopyModeDontWake,
        };
        int errno = Invoke(UffdIoctls.Copy, &copy);
        return Interpret(errno, copy.Copy, length, "UFFDIO_COPY");
    }

    /// <summary>Maps the zero page at missing pages. Not supported on hugetlbfs (the kernel answers EINVAL → NotRegistered); COPY zeros there.</summary>
    public PlacementResult ZeroPage(nint destination, ulong length, bool wake = true)
    {
        CheckPlacement(destination, length);
        var zero = new UffdioZeropage
        {
            Range = new UffdioRange { Start = (ulong)destination, Len = length },
            Mode = wake ? 0 : UffdIoctls.ZeropageModeDontWake,
        };
        int errno = Invoke(UffdIoctls.ZeroPage, &zero);
        return Interpret(errno, zero.Zeropage, length, "UFFDIO_ZEROPAGE");
    }

    /// <summary>
    /// Resolves minor faults: maps the pages already in the page cache (filled through an alias mapping). A page
    /// missing from the page cache is a caller bug and throws (EFAULT).
    /// </summary>
    public PlacementResult Continue(nint destination, ulong length, bool wake = true)
    {
        CheckPlacement(destination, length);
        var resolve = new UffdioContinue
        {
            Range = new UffdioRange { Start = (ulong)destination, Len = length },
            Mode = wake ? 0 : UffdIoctls.ContinueModeDontWake,
        };
        int errno = Invoke(UffdIoctls.Continue, &resolve);
        return Interpret(errno, resolve.Mapped, length, "UFFDIO_CONTINUE");
    }

    /// <summary>
    /// Write-protects or un-protects a range registered in WriteProtect mode. Un-protecting resolves pending WP
    /// faults and wakes them unless <paramref name="wake"/> is false; protecting never wakes anyone.
    /// </summary>
    public void WriteProtect(nint start, ulong length, bool protect, bool wake = true)
    {
        // The kernel refuses WP together with DONTWAKE: there is nobody to wake when protecting.
        ulong mode = protect ? UffdIoctls.WriteProtectModeWp : (wake ? 0 : UffdIoctls.WriteProtectModeDontWake);
        var writeProtect = new UffdioWriteprotect
        {
            Range = new UffdioRange { Start = (ulong)start, Len = length },
            Mode = mode,
        };
        int errno = Invoke(UffdIoctls.WriteProtect, &writeProtect);
        if (errno != 0)
        {
            throw new LinuxException($"UFFDIO_WRITEPROTECT 0x{start:x}+0x{length:x} protect={protect}", errno);
        }
    }

    /// <summary>Wakes threads waiting on faults in a range — allowed even where the registration is gone.</summary>
    public void Wake(nint start, ulong length)
    {
        var range = new UffdioRange { Start = (ulong)start, Len = length };
        int errno = Invoke(UffdIoctls.Wake, &range);
        if (errno != 0)
        {
            throw new LinuxException($"UFFDIO_WAKE 0x{start:x}+0x{length:x}", errno);
        }
    }

    /// <summary>Reads one pending message without waiting; false when there is none.</summary>
    public bool TryReadFault(out UserfaultfdEvent message)
    {
        RequireNonBlocking();
        UffdMsg raw;
        if (ReadMessages(&raw, 1) == 1)
        {
            message = UserfaultfdEvent.From(raw);
            return true;
        }

        message = default;
        return false;
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for messages and returns how many it put in <paramref name="batch"/>
    /// (0 on timeout). For the first <paramref name="busyPoll"/> it spins on non-blocking reads — a fault thread that
    /// sleeps in poll(2) pays a cross-CPU wake-up per fault (~145 µs vs ~37 µs here, DESIGN §6) — then sleeps in
    /// poll(2) for the rest. Each read(2) takes as many queued messages as fit (up to 128). Allocation-free.
    /// </summary>
    public int ReadFaults(Span<UserfaultfdEvent> batch, TimeSpan timeout, TimeSpan busyPoll)
    {
        RequireNonBlocking();
        if (batch.IsEmpty)
        {
            throw new ArgumentException("the batch has no room for a message", nameof(batch));
        }

        int capacity = Math.Min(batch.Length, MaxMessagesPerRead);
        UffdMsg* buffer = stackalloc UffdMsg[capacity];
        long start = Stopwatch.GetTimestamp();
        long timeoutTicks = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : ToStopwatchTicks(timeout);
        long busyTicks = Math.Min(ToStopwatchTicks(busyPoll), timeoutTicks);

        while (true)
        {
            int count = ReadMessages(buffer, capacity);
            if (count > 0)
            {
                return Decode(buffer, count, batch);
            }

            if (Stopwatch.GetTimestamp() - start >= busyTicks)
            {
                break;
            }

            Thread.SpinWait(SpinIterationsBetweenReads);
        }

        while (true)
        {
            long elapsed = Stopwatch.GetTimestamp() - start;
            if (elapsed >= timeoutTicks)
            {
                return 0;
            }

            int waitMilliseconds = timeoutTicks == long.MaxValue
                ? -1
                : (int)Math.Clamp(((timeoutTicks - elapsed) * 1000 + Stopwatch.Frequency - 1) / Stopwatch.Frequency, 1, int.MaxValue);
            if (!WaitReadable(waitMilliseconds))
            {
                continue;
            }

            int count = ReadMessages(buffer, capacity);
            if (count > 0)
            {
                return Decode(buffer, count, batch);
            }
        }
    }

    public void Dispose() => fd.Dispose();

    private static FileDescriptor OpenDescriptor(bool nonBlocking)
    {
        // Not UFFD_USER_MODE_ONLY: KVM touches guest memory from the kernel, and those faults must reach us too.
        int flags = Unistd.O_CLOEXEC | (nonBlocking ? Unistd.O_NONBLOCK : 0);
        LinuxException? deviceFailure = null;
        try
        {
            using FileDescriptor device = Unistd.Open(DevicePath, Unistd.O_RDWR);
            int fd = Ioctl.Invoke(device.Value, UffdIoctls.DevNew, flags);
            if (fd >= 0)
            {
                return new FileDescriptor(fd);
            }

            deviceFailure = LinuxException.FromLastError($"USERFAULTFD_IOC_NEW on {DevicePath}");
        }
        catch (LinuxException e)
        {
            deviceFailure = e;
        }

        try
        {
            return UffdSyscall.Create(flags);
        }
        catch (LinuxException e) when (e.Errno is Errno.EPERM or Errno.ENOSYS)
        {
            string why = e.Errno == Errno.ENOSYS
                ? "this kernel was built without CONFIG_USERFAULTFD"
                : "the userfaultfd system call is restricted (vm.unprivileged_userfaultfd=0): run as root, or give this user access to /dev/userfaultfd";
            throw new UserfaultfdException($"cannot open a userfaultfd: {deviceFailure?.Message}; userfaultfd(2): {e.Message} — {why}", e);
        }
    }

    /// <summary>UFFDIO_API: enables <paramref name="features"/> and returns every feature the kernel offers.</summary>
    private static UffdFeatures Handshake(FileDescriptor fd, UffdFeatures features)
    {
        var api = new UffdioApi { Api = UffdIoctls.UffdApi, Features = (ulong)features };
        Ioctl.Checked(fd, UffdIoctls.Api, ref api, $"UFFDIO_API ({UserfaultfdException.Describe(features)})");
        return (UffdFeatures)api.Features;
    }

    private static PlacementResult Interpret(int errno, long done, ulong length, string operation)
    {
        // The kernel writes the byte count (or -errno) into the struct and, when it placed only part of the range,
        // fails the ioctl with EAGAIN: a positive count is therefore a partial placement, whatever the errno.
        switch (errno)
        {
            case 0:
                return (ulong)done == length ? new PlacementResult(PlacementStatus.Placed, length) : new PlacementResult(PlacementStatus.Partial, (ulong)Math.Max(done, 0));
            case Errno.EAGAIN:
                return done > 0 ? new PlacementResult(PlacementStatus.Partial, (ulong)done, errno) : new PlacementResult(PlacementStatus.Retry, 0, errno);
            case Errno.EEXIST:
                return new PlacementResult(PlacementStatus.AlreadyPresent, 0, errno);
            case Errno.ENOENT:
            case Errno.EINVAL:
                return new PlacementResult(PlacementStatus.NotRegistered, 0, errno);
            default:
                throw new LinuxException(operation, errno);
        }
    }

    private static void CheckPlacement(nint destination, ulong length)
    {
        // Misalignment would come back as EINVAL, which must keep meaning "not registered" to the caller.
        ulong basePage = (ulong)Environment.SystemPageSize;
        if (length == 0 || length % basePage != 0 || (ulong)destination % basePage != 0)
        {
            throw new ArgumentException($"placement 0x{destination:x}+0x{length:x} must be page-aligned and non-empty");
        }
    }

    private static long ToStopwatchTicks(TimeSpan span) =>
        span <= TimeSpan.Zero ? 0 : (long)Math.Min(span.TotalSeconds * Stopwatch.Frequency, long.MaxValue);

    private static int Decode(UffdMsg* messages, int count, Span<UserfaultfdEvent> batch)
    {
        for (int i = 0; i < count; i++)
        {
            batch[i] = UserfaultfdEvent.From(messages[i]);
        }

        return count;
    }

    /// <summary>An ioctl on the descriptor; returns 0 or the errno. Keeps the fd alive against a concurrent Dispose.</summary>
    private int Invoke<T>(uint request, T* argument)
        where T : unmanaged
    {
        bool added = false;
        fd.DangerousAddRef(ref added);
        try
        {
            return Ioctl.Invoke(fd.Value, request, (nint)argument) < 0 ? Marshal.GetLastPInvokeError() : 0;
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }
    }

    /// <summary>One non-blocking read(2) of up to <paramref name="capacity"/> messages; 0 when none are queued.</summary>
    private int ReadMessages(UffdMsg* buffer, int capacity)
    {
        bool added = false;
        fd.DangerousAddRef(ref added);
        try
        {
            while (true)
            {
                nint bytes = Unistd.Read(fd.Value, (byte*)buffer, (nuint)(capacity * sizeof(UffdMsg)));
                if (bytes >= 0)
                {
                    return (int)(bytes / sizeof(UffdMsg));
                }

                int errno = Marshal.GetLastPInvokeError();
                if (errno == Errno.EAGAIN)
                {
                    return 0;
                }

                if (errno != Errno.EINTR)
                {
                    throw new LinuxException("read userfaultfd", errno);
                }
            }
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }
    }

    /// <summary>poll(2) for readability; false on timeout or EINTR.</summary>
    private bool WaitReadable(int timeoutMilliseconds)
    {
        bool added = false;
        fd.DangerousAddRef(ref added);
        try
        {
            var poll = new Poll.PollFd { Fd = fd.Value, Events = Poll.POLLIN };
            int ready = Poll.Invoke(&poll, 1, timeoutMilliseconds);
            if (ready < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                return errno == Errno.EINTR ? false : throw new LinuxException("poll userfaultfd", errno);
            }

            if ((poll.Revents & Poll.POLLERR) != 0)
            {
                throw new LinuxException("poll userfaultfd (POLLERR)", Errno.EIO);
            }

            return ready > 0;
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }
    }

    private void RequireNonBlocking()
    {
        if (!IsNonBlocking)
        {
            throw new InvalidOperationException("fault reading needs a userfaultfd opened with nonBlocking: true (the kernel answers poll() on a blocking one with POLLERR)");
        }
    }
}
