using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>
/// sendmsg(2) / recvmsg(2) with SCM_RIGHTS: a file descriptor passed along with bytes on a Unix socket. .NET's Socket
/// has no way to send or receive ancillary rights, so these take the socket's raw descriptor.
/// </summary>
public static partial class SocketRights
{
    public const int SOL_SOCKET = 1;
    public const int SCM_RIGHTS = 1;
    public const int MSG_CTRUNC = 0x8;
    public const int MSG_CMSG_CLOEXEC = 0x40000000;

    /// <summary>CMSG_SPACE(sizeof(int)): the header (16 bytes) and one descriptor, padded to 8.</summary>
    public const int OneDescriptorSpace = 24;

    /// <summary>CMSG_LEN(sizeof(int)).</summary>
    public const int OneDescriptorLength = 20;

    /// <summary>
    /// Room for four descriptors on receive: a peer that sends more than one gets each of them closed (with room for
    /// only one, the kernel would install a second one that fits the padding, and it would stay open here).
    /// </summary>
    private const int ReceiveSpace = 16 + (4 * sizeof(int));

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public nint Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public nint Name;
        public uint NameLength;
        public nint Iov;
        public nuint IovLength;
        public nint Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct CmsgHdr
    {
        public nuint Length;
        public int Level;
        public int Type;
    }

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static unsafe partial nint SendmsgRaw(int socket, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static unsafe partial nint RecvmsgRaw(int socket, MsgHdr* message, int flags);

    /// <summary>Sends <paramref name="data"/> (all of it) with <paramref name="descriptor"/> attached to its first byte.</summary>
    public static unsafe void Send(int socket, ReadOnlySpan<byte> data, int descriptor)
    {
        byte* control = stackalloc byte[OneDescriptorSpace];
        new Span<byte>(control, OneDescriptorSpace).Clear();
        var header = (CmsgHdr*)control;
        header->Length = OneDescriptorLength;
        header->Level = SOL_SOCKET;
        header->Type = SCM_RIGHTS;
        *(int*)(control + sizeof(CmsgHdr)) = descriptor;

        fixed (byte* bytes = data)
        {
            int done = 0;
            while (done < data.Length)
            {
                var vector = new IoVec { Base = (nint)(bytes + done), Length = (nuint)(data.Length - done) };
                var message = new MsgHdr { Iov = (nint)(&vector), IovLength = 1 };
                if (done == 0)
                {
                    message.Control = (nint)control;
                    message.ControlLength = OneDescriptorSpace;
                }

                nint sent = SendmsgRaw(socket, &message, 0);
                if (sent < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == Errno.EINTR)
                    {
                        continue;
                    }

                    throw new LinuxException("sendmsg", errno);
                }

                done += (int)sent;
            }
        }
    }

    /// <summary>
    /// One recvmsg into <paramref name="buffer"/>; returns the bytes read (0 at the end of the stream). A descriptor
    /// that came with them is returned in <paramref name="descriptor"/> (close-on-exec), owned by the caller. More than
    /// one descriptor in a message, or more than fit, is refused: every one that arrived is closed first.
    /// </summary>
    public static unsafe int Receive(int socket, Span<byte> buffer, out FileDescriptor? descriptor)
    {
        descriptor = null;
        byte* control = stackalloc byte[ReceiveSpace];
        new Span<byte>(control, ReceiveSpace).Clear();
        fixed (byte* bytes = buffer)
        {
            var vector = new IoVec { Base = (nint)bytes, Length = (nuint)buffer.Length };
            var message = new MsgHdr { Iov = (nint)(&vector), IovLength = 1, Control = (nint)control, ControlLength = ReceiveSpace };
            nint read;
            do
            {
                read = RecvmsgRaw(socket, &message, MSG_CMSG_CLOEXEC);
            }
            while (read < 0 && Marshal.GetLastPInvokeError() == Errno.EINTR);

            if (read < 0)
            {
                throw LinuxException.FromLastError("recvmsg");
            }

            // Every descriptor the kernel installed is ours to close, whatever else is wrong with the message.
            var received = new List<FileDescriptor>();
            var header = (CmsgHdr*)control;
            if (message.ControlLength >= (nuint)sizeof(CmsgHdr) && header->Level == SOL_SOCKET && header->Type == SCM_RIGHTS
                && header->Length >= (nuint)sizeof(CmsgHdr))
            {
                int count = (int)(((ulong)header->Length - (ulong)sizeof(CmsgHdr)) / sizeof(int));
                for (int i = 0; i < count && i < 4; i++)
                {
                    received.Add(new FileDescriptor(((int*)(control + sizeof(CmsgHdr)))[i]));
                }
            }

            if (received.Count > 1 || (message.Flags & MSG_CTRUNC) != 0)
            {
                received.ForEach(fd => fd.Dispose());
                throw new LinuxException($"recvmsg: {(received.Count > 1 ? $"{received.Count} descriptors" : "more descriptors than fit")} where at most one was expected", Errno.EINVAL);
            }

            descriptor = received.Count == 1 ? received[0] : null;
            return (int)read;
        }
    }
}
