using System.Diagnostics;
using System.Net.Sockets;
using Vmm.Migration;

namespace Vmm.Tests.Migration;

/// <summary>Connecting to a destination: the timeout holds even when the kernel would make connect(2) wait.</summary>
public sealed class MigrationConnectionTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vmm-connect-").FullName;

    [Fact]
    public void AListenerThatNeverAcceptsFailsTheConnectWithinItsTimeout()
    {
        // A Unix listener with a backlog of 1 that never accepts: once its queue is full, connect(2) blocks.
        string path = Path.Combine(dir, "full.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        MigrationUri uri = MigrationUri.Parse($"unix:{path}");

        var queued = new List<MigrationConnection>();
        try
        {
            MigrationFailedException? failure = null;
            var clock = Stopwatch.StartNew();
            for (int attempt = 0; attempt < 8 && failure is null; attempt++)
            {
                clock.Restart();
                try
                {
                    queued.Add(MigrationConnection.Connect(uri, TimeSpan.FromMilliseconds(500)));
                }
                catch (MigrationFailedException e)
                {
                    failure = e;
                }
            }

            Assert.NotNull(failure);
            Assert.Equal($"cannot connect to unix:{path}: no answer within 0.5 s", failure.Message);
            Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(5));
        }
        finally
        {
            queued.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void NobodyListeningIsRefusedAtOnce()
    {
        string path = Path.Combine(dir, "nobody.sock");
        var failure = Assert.Throws<MigrationFailedException>(() => MigrationConnection.Connect(MigrationUri.Parse($"unix:{path}"), TimeSpan.FromSeconds(10)));
        Assert.StartsWith($"cannot connect to unix:{path}: ", failure.Message);
        Assert.DoesNotContain("no answer", failure.Message);
    }

    /// <summary>
    /// Issue 18: both ends of a TCP migration connection keep it alive (SO_KEEPALIVE, first probe after 10 s idle, then
    /// every 5 s, 3 probes), so a peer host that vanishes is found even on a quiet return path.
    /// </summary>
    [Fact]
    public void BothEndsOfATcpConnectionSendKeepalives()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        listener.Listen(1);
        int port = ((System.Net.IPEndPoint)listener.LocalEndPoint!).Port;
        using MigrationConnection source = MigrationConnection.Connect(MigrationUri.Parse($"tcp:127.0.0.1:{port}"), TimeSpan.FromSeconds(10));
        using MigrationConnection destination = MigrationConnection.Adopt(listener.Accept());
        foreach (Socket socket in new[] { source.Socket, destination.Socket })
        {
            Assert.Equal(1, (int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)!);
            Assert.Equal(10, (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime)!);
            Assert.Equal(5, (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval)!);
            Assert.Equal(3, (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount)!);
        }
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);
}
