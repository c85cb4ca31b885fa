using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>poll(2).</summary>
public static partial class Poll
{
    public const short POLLIN = 0x001;
    public const short POLLERR = 0x008;
    public const short POLLHUP = 0x010;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static unsafe partial int Invoke(PollFd* fds, nuint count, int timeoutMilliseconds);
}
