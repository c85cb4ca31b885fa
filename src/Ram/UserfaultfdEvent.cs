using Vmm.Linux.Userfaultfd;

namespace Vmm.Ram;

/// <summary>One decoded uffd_msg. Fields that do not apply to <see cref="Kind"/> are zero (<see cref="ForkedFd"/>: -1).</summary>
public readonly record struct UserfaultfdEvent
{
    public UserfaultfdEventKind Kind { get; init; }

    /// <summary>The raw UFFD_EVENT_* code.</summary>
    public byte Code { get; init; }

    /// <summary>
    /// Pagefault: the faulting address, rounded down to the page (2 MiB on hugetlbfs) unless EXACT_ADDRESS was
    /// negotiated. Remove/Unmap: the start of the range. Remap: the old start.
    /// </summary>
    public nint Address { get; init; }

    public UserfaultfdFaultFlags Flags { get; init; }

    /// <summary>The faulting thread's kernel tid, when THREAD_ID was negotiated; otherwise 0.</summary>
    public uint ThreadId { get; init; }

    /// <summary>Remove/Unmap: the range [RangeStart, RangeEnd). Remap: the new place of the range.</summary>
    public nint RangeStart { get; init; }

    public nint RangeEnd { get; init; }

    /// <summary>Fork: the child's userfaultfd, which the reader now owns and must close; otherwise -1.</summary>
    public int ForkedFd { get; init; }

    internal static unsafe UserfaultfdEvent From(in UffdMsg message)
    {
        switch (message.Event)
        {
            case UffdIoctls.EventPagefault:
                return new UserfaultfdEvent
                {
                    Kind = UserfaultfdEventKind.Pagefault,
                    Code = message.Event,
                    Address = (nint)message.PagefaultAddress,
                    Flags = (UserfaultfdFaultFlags)message.PagefaultFlags,
                    ThreadId = message.PagefaultThreadId,
                    ForkedFd = -1,
                };
            case UffdIoctls.EventRemove or UffdIoctls.EventUnmap:
                return new UserfaultfdEvent
                {
                    Kind = message.Event == UffdIoctls.EventRemove ? UserfaultfdEventKind.Remove : UserfaultfdEventKind.Unmap,
                    Code = message.Event,
                    Address = (nint)message.RemoveStart,
                    RangeStart = (nint)message.RemoveStart,
                    RangeEnd = (nint)message.RemoveEnd,
                    ForkedFd = -1,
                };
            case UffdIoctls.EventRemap:
                // struct { __u64 from; __u64 to; __u64 len; } remap, overlaying the remove range and the word after it.
                fixed (UffdMsg* raw = &message)
                {
                    ulong length = *(ulong*)((byte*)raw + 24);
                    return new UserfaultfdEvent
                    {
                        Kind = UserfaultfdEventKind.Remap,
                        Code = message.Event,
                        Address = (nint)message.RemoveStart,
                        RangeStart = (nint)message.RemoveEnd,
                        RangeEnd = (nint)(message.RemoveEnd + length),
                        ForkedFd = -1,
                    };
                }

            case UffdIoctls.EventFork:
                // struct { __u32 ufd; } fork, at the start of the union.
                return new UserfaultfdEvent
                {
                    Kind = UserfaultfdEventKind.Fork,
                    Code = message.Event,
                    ForkedFd = (int)(uint)message.RemoveStart,
                };
            default:
                return new UserfaultfdEvent { Kind = UserfaultfdEventKind.Unknown, Code = message.Event, ForkedFd = -1 };
        }
    }
}
