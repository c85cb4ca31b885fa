using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>
/// An owned file descriptor. Only -1 is invalid: fd 0 is a perfectly good descriptor when stdin was closed.
/// </summary>
public sealed class FileDescriptor : SafeHandle
{
    public FileDescriptor()
        : base(new IntPtr(-1), ownsHandle: true)
    {
    }

    public FileDescriptor(int fd, bool ownsHandle = true)
        : base(new IntPtr(-1), ownsHandle)
    {
        SetHandle(new IntPtr(fd));
    }

    public override bool IsInvalid => handle == new IntPtr(-1);

    /// <summary>The raw number, for ioctls. The caller keeps this object alive for the duration of the call.</summary>
    public int Value => (int)handle;

    protected override bool ReleaseHandle() => Unistd.Close((int)handle) == 0;
}
