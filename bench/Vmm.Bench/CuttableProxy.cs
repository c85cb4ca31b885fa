using System.Net.Sockets;

namespace Vmm.Bench;

/// <summary>
/// A Unix-socket forwarder between a migration source and its destination that the benchmark can cut at a moment of
/// its choosing (<see cref="CutAll"/>): the broken network of the postcopy recovery benchmark. It forwards bytes only
/// (no descriptors), so a shared-memory ring never crosses it.
/// </summary>
internal sealed class CuttableProxy : IDisposable
{
    private readonly Socket listener;
    private readonly string target;
    private readonly List<Socket> sockets = [];

    public CuttableProxy(string listenPath, string targetPath)
    {
        target = targetPath;
        listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(listenPath));
        listener.Listen(4);
        _ = Task.Run(AcceptAll);
    }

    private async Task AcceptAll()
    {
        while (true)
        {
            Socket source;
            try
            {
                source = await listener.AcceptAsync();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }

            var destination = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await destination.ConnectAsync(new UnixDomainSocketEndPoint(target));
            lock (sockets)
            {
                sockets.Add(source);
                sockets.Add(destination);
            }

            _ = Task.Run(() => Pump(source, destination));
            _ = Task.Run(() => Pump(destination, source));
        }
    }

    private static async Task Pump(Socket from, Socket to)
    {
        byte[] buffer = new byte[1 << 20];
        try
        {
            int read;
            while ((read = await from.ReceiveAsync(buffer)) > 0)
            {
                await to.SendAsync(buffer.AsMemory(0, read));
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        Shut(to);
    }

    /// <summary>Breaks every connection made through the proxy, both directions.</summary>
    public void CutAll()
    {
        lock (sockets)
        {
            sockets.ForEach(Shut);
        }
    }

    private static void Shut(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    public void Dispose()
    {
        listener.Dispose();
        CutAll();
        lock (sockets)
        {
            sockets.ForEach(s => s.Dispose());
        }
    }
}
