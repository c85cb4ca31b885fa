namespace Vmm.Ram;

/// <summary>What a userfaultfd registration traps (UFFDIO_REGISTER_MODE_*; the values are the kernel's bits).</summary>
[Flags]
public enum UffdRegisterModes : ulong
{
    None = 0,

    /// <summary>Touching a page with nothing behind it: resolved by COPY or ZEROPAGE.</summary>
    Missing = 1,

    /// <summary>Writing a write-protected page: resolved by un-protecting it.</summary>
    WriteProtect = 2,

    /// <summary>Touching a page that is in the page cache but not mapped here: resolved by CONTINUE.</summary>
    Minor = 4,
}
