using System.Net.Sockets;

namespace Vmm.Tests.Infrastructure;

/// <summary>
/// A Unix-socket proxy between a migration source and destination that forwards faithfully until a chosen byte of
/// one connection's forward direction, then drops that connection or flips a bit: failure injection at a known point.
/// Connection 0 is the main stream; a postcopy migration opens a second one, the preempt channel. Every other
/// connection is forwarded untouched, and stays up when the faulty one is dropped. <see cref="Drop"/> drops any
/// connection at a moment the test chooses.
/// </summary>
public sealed class FaultyProxy : IDisposable
{
    private readonly Socket listener;
    private readonly string target;
    private readonly long faultAt;
    private readonly ProxyFault fault;
    private readonly int faultOn;
    private readonly List<Task> pumps = [];
    private readonly Dictionary<int, (Socket Source, Socket Destination)> connections = [];
    private readonly Task acceptor;

    public FaultyProxy(string listenPath, string targetPath, long faultAt, ProxyFault fault, int faultOn = 0)
    {
        this.target = targetPath;
        this.faultAt = faultAt;
        this.fault = fault;
        this.faultOn = faultOn;
        listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(listenPath));
        listener.Listen(4);
        acceptor = Task.Run(AcceptAll);
    }

    /// <summary>Bytes forwarded so far on the connection the fault is for.</summary>
    public long Forwarded { get; private set; }

    private async Task AcceptAll()
    {
        for (int index = 0; ; index++)
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

            int connection = index;
            lock (pumps)
            {
                pumps.Add(Task.Run(() => Pump(source, connection)));
            }
        }
    }

    /// <summary>Closes both directions of connection <paramref name="index"/> now (false if it has not been made).</summary>
    public bool Drop(int index)
    {
        lock (connections)
        {
            if (!connections.TryGetValue(index, out var pair))
            {
                return false;
            }

            Shutdown(pair.Source);
            Shutdown(pair.Destination);
            return true;
        }
    }

    private async Task Pump(Socket source, int index)
    {
        using Socket sourceSide = source;
        using var destination = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await destination.ConnectAsync(new UnixDomainSocketEndPoint(target));
        }
        catch (SocketException)
        {
            // The destination is gone: so is this connection.
            Shutdown(source);
            return;
        }

        lock (connections)
        {
            connections[index] = (source, destination);
        }

        // Return direction: copied untouched until either side goes away.
        Task back = Task.Run(async () =>
        {
            byte[] buffer = new byte[65536];
            try
            {
                int read;
                while ((read = await destination.ReceiveAsync(buffer)) > 0)
                {
                    await source.SendAsync(buffer.AsMemory(0, read));
                }
            }
            catch (SocketException)
            {
            }
            catch (ObjectDisposedException)
            {
            }
        });

        bool faulty = index == faultOn;
        long forwarded = 0;
        byte[] forward = new byte[65536];
        try
        {
            int read;
            while ((read = await source.ReceiveAsync(forward)) > 0)
            {
                int count = read;
                if (faulty && forwarded + read > faultAt)
                {
                    count = (int)(faultAt - forwarded);
                    if (fault == ProxyFault.FlipBit)
                    {
                        forward[count] ^= 0x10;
                        await destination.SendAsync(forward.AsMemory(0, read));
                        Forwarded = forwarded += read;

                        // Keep forwarding the rest faithfully: only the one bit is wrong.
                        while ((read = await source.ReceiveAsync(forward)) > 0)
                        {
                            await destination.SendAsync(forward.AsMemory(0, read));
                        }

                        break;
                    }

                    await destination.SendAsync(forward.AsMemory(0, count));
                    Forwarded = forwarded += count;
                    break;
                }

                await destination.SendAsync(forward.AsMemory(0, count));
                forwarded += count;
                if (faulty)
                {
                    Forwarded = forwarded;
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        Shutdown(source);
        Shutdown(destination);
        await Task.WhenAny(back, Task.Delay(5000));
    }

    private static void Shutdown(Socket socket)
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
        acceptor.Wait(TimeSpan.FromSeconds(10));
        Task[] running;
        lock (pumps)
        {
            running = [.. pumps];
        }

        Task.WaitAll(running, TimeSpan.FromSeconds(10));
    }
}

public enum ProxyFault
{
    /// <summary>Forward up to the fault point, then close both directions.</summary>
    Drop,

    /// <summary>Flip one bit at the fault point and forward everything.</summary>
    FlipBit,
}
