using System.Net.Sockets;

namespace Vmm.Migration;

/// <summary>
/// How long a migration waits for a quiet peer (docs/migration.md, Limits). A peer that connects and says nothing, or
/// stops reading, or stops writing, must not hold a destination in `inmigrate` forever nor a source's guest stopped.
/// </summary>
public sealed record MigrationTimeouts
{
    /// <summary>A new connection must deliver its 12-byte stream header within this, or it is dropped (destination).</summary>
    public TimeSpan Header { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Once a migration is under way, the longest silence on the main stream (destination) before it counts as broken.
    /// The source writes continuously until the destination has every page, so a minute of nothing is a dead peer.
    /// </summary>
    public TimeSpan Read { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The longest a single write may block because the peer does not read (source): then the migration fails and,
    /// before the switchover, the guest runs again here.
    /// </summary>
    public TimeSpan Write { get; init; } = TimeSpan.FromSeconds(30);

    public static MigrationTimeouts Default { get; } = new();

    /// <summary>TCP keepalive: an idle connection to a vanished host is found broken within about 25 s.</summary>
    public static void EnableKeepAlive(Socket socket)
    {
        if (socket.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            return;
        }

        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 10);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 5);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 3);
    }
}
