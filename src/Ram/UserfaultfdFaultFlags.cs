namespace Vmm.Ram;

/// <summary>What kind of access faulted (UFFD_PAGEFAULT_FLAG_*; the values are the kernel's bits).</summary>
[Flags]
public enum UserfaultfdFaultFlags : ulong
{
    /// <summary>A read of a missing page.</summary>
    None = 0,

    Write = 1,

    /// <summary>A write to a write-protected page.</summary>
    WriteProtect = 2,

    /// <summary>A minor fault: the page is in the page cache, only the mapping is missing (resolve with CONTINUE).</summary>
    Minor = 4,
}
