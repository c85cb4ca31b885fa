namespace Vmm.Ram;

/// <summary>The kind of a userfaultfd message (UFFD_EVENT_*).</summary>
public enum UserfaultfdEventKind
{
    /// <summary>A message this code does not know; see <see cref="UserfaultfdEvent.Code"/>.</summary>
    Unknown,

    /// <summary>A thread (or the kernel on its behalf, e.g. KVM) touched a registered page and is waiting.</summary>
    Pagefault,

    /// <summary>The process forked with EVENT_FORK enabled; <see cref="UserfaultfdEvent.ForkedFd"/> is the child's userfaultfd.</summary>
    Fork,

    /// <summary>mremap moved a registered range: <see cref="UserfaultfdEvent.Address"/> is the old start, the range is the new place.</summary>
    Remap,

    /// <summary>MADV_DONTNEED / MADV_REMOVE dropped a registered range.</summary>
    Remove,

    /// <summary>munmap removed a registered range.</summary>
    Unmap,
}
