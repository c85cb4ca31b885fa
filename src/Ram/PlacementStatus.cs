namespace Vmm.Ram;

/// <summary>How a userfaultfd placement (COPY, ZEROPAGE, CONTINUE) ended — the errnos a postcopy loop must branch on.</summary>
public enum PlacementStatus
{
    /// <summary>The whole range was placed (and waiters woken unless asked not to).</summary>
    Placed,

    /// <summary>EEXIST: a page is already there. Never overwrite: a duplicate is harmless (seed 002).</summary>
    AlreadyPresent,

    /// <summary>
    /// ENOENT (or EINVAL from older kernels): the range is not, or no longer, registered — remapped, unmapped — or
    /// does not support this operation (ZEROPAGE on hugetlbfs gives EINVAL). Wake any waiter and drop the page (seed 000).
    /// </summary>
    NotRegistered,

    /// <summary>EAGAIN with nothing placed: the address space is changing under us (fork, mremap, remove); retry.</summary>
    Retry,

    /// <summary>Fewer bytes than asked were placed; <see cref="PlacementResult.Bytes"/> says how many. Place the rest again.</summary>
    Partial,
}
