using System.Runtime.InteropServices;

namespace Vmm.Linux.Userfaultfd;

/// <summary>struct uffdio_api.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct UffdioApi
{
    public ulong Api;
    public ulong Features;
    public ulong Ioctls;
}

/// <summary>struct uffdio_range.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct UffdioRange
{
    public ulong Start;
    public ulong Len;
}

/// <summary>struct uffdio_register.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct UffdioRegister
{
    public UffdioRange Range;
    public ulong Mode;
    public ulong Ioctls;
}

/// <summary>struct uffdio_copy: Copy receives the bytes copied or a negated errno.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct UffdioCopy
{
    public ulong Dst;
    public ulong Src;
    public ulong Len;
    public ulong Mode;
    public long Copy;
}

/// <summary>struct uffdio_zeropage.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct UffdioZeropage
{
    public UffdioRange Range;
    public ulong Mode;
    public long Zeropage;
}

/// <summary>struct uffdio_writeprotect.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct UffdioWriteprotect
{
    public UffdioRange Range;
    public ulong Mode;
}

/// <summary>struct uffdio_continue.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct UffdioContinue
{
    public UffdioRange Range;
    public ulong Mode;
    public long Mapped;
}

/// <summary>struct uffd_msg (32 bytes); only the pagefault arm of the union is named.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct UffdMsg
{
    [FieldOffset(0)] public byte Event;
    [FieldOffset(8)] public ulong PagefaultFlags;
    [FieldOffset(16)] public ulong PagefaultAddress;
    [FieldOffset(24)] public uint PagefaultThreadId;

    // For UFFD_EVENT_REMOVE / UNMAP: the removed range [start, end).
    [FieldOffset(8)] public ulong RemoveStart;
    [FieldOffset(16)] public ulong RemoveEnd;
}
