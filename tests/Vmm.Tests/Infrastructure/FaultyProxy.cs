using System.Net.Sockets;
using Vmm.Linux;

namespace Vmm.Tests.Infrastructure;

/// <summary>
/// A Unix-socket proxy between a migration source and destination that forwards faithfully until a chosen byte of
/// one connection's forward direction, then drops that connection or flips a bit: failure injection at a known point.
/// Connection 0 is the main stream; a postcopy migration opens a second one, the preempt channel. Every other
/// connection is forwarded untouched, and stays up when the faulty one is dropped. <see cref="Drop"/> drops any
/// connection at a moment the test chooses; <see cref="SwallowReturn"/> loses what the destination sends from then on.
/// With <c>passDescriptors</c> the forward direction is read with recvmsg, and a descriptor that comes with its bytes
/// (the shared-memory ring's memfd on the preempt channel) goes on with them, so the ring works through the proxy.
/// </summary>
public sealed class FaultyProxy : IDisposable
{
    private readonly Socket listener;
    private readonly string target;
    private readonly long faultAt;
    private readonly ProxyFault fault;
    private readonly int faultOn;
    private readonly bool passDescriptors;
    private readonly HashSet<int> swallowing = [];
    private long swallowed;
    private readonly List<Task> pumps = [];
    private readonly Dictionary<int, (Socket Source, Socket Destination)> connections = [];
    private readonly Task acceptor;

    public FaultyProxy(string listenPath, string targetPath, long faultAt, ProxyFault fault, int faultOn = 0, bool passDescriptors = false)
    {
        this.passDescriptors = passDescriptors;
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

    /// <summary>Bytes of return directions read and thrown away since <see cref="SwallowReturn"/>.</summary>
    public long Swallowed => Interlocked.Read(ref swallowed);

    /// <summary>
    /// From now on the return direction (destination to source) of connection <paramref name="index"/> is read and
    /// thrown away: what the destination sends is lost in the network, while the connection stays up.
    /// </summary>
    public void SwallowReturn(int index)
    {
        lock (swallowing)
        {
            swallowing.Add(index);
        }
    }

    private bool IsSwallowing(int index)
    {
        lock (swallowing)
        {
            return swallowing.Contains(index);
        }
    }

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
                    if (IsSwallowing(index))
                    {
                        Interlocked.Add(ref swallowed, read);
                        continue;
                    }

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
            while (true)
            {
                FileDescriptor? descriptor = null;
                int read = passDescriptors ? ReceiveWithRights(source, forward, out descriptor) : await source.ReceiveAsync(forward);
                if (read <= 0)
                {
                    descriptor?.Dispose();
                    break;
                }

                if (descriptor is not null)
                {
                    // Passed on with the whole chunk: the receiver gets it with the first byte, as from the source.
                    using (descriptor)
                    {
                        SocketRights.Send((int)destination.Handle, forward.AsSpan(0, read), descriptor.Value);
                    }

                    forwarded += read;
                    if (faulty)
                    {
                        Forwarded = forwarded;
                    }

                    continue;
                }

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
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
        }

        Shutdown(source);
        Shutdown(destination);
        await Task.WhenAny(back, Task.Delay(5000));
    }

    /// <summary>
    /// One recvmsg from <paramref name="socket"/> (0 at its end), with the descriptor that came with the bytes. Waits in
    /// poll first: the socket may be non-blocking underneath (the return direction uses it asynchronously). It holds a
    /// pool thread while it waits; a proxy has two or three connections, so that is a thread or three.
    /// </summary>
    private static unsafe int ReceiveWithRights(Socket socket, byte[] buffer, out FileDescriptor? descriptor)
    {
        int fd = (int)socket.Handle;
        while (true)
        {
            var wanted = new Poll.PollFd { Fd = fd, Events = Poll.POLLIN };
            if (Poll.Invoke(&wanted, 1, 100) <= 0)
            {
                continue;
            }

            try
            {
                return SocketRights.Receive(fd, buffer, out descriptor);
            }
            catch (LinuxException e) when (e.Errno == Errno.EAGAIN)
            {
            }
        }
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
