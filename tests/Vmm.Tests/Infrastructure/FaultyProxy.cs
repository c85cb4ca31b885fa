using System.Net.Sockets;

namespace Vmm.Tests.Infrastructure;

/// <summary>
/// A Unix-socket proxy between a migration source and destination that forwards faithfully until a chosen byte of
/// the main stream, then drops the connection or flips a bit: failure injection at a known point.
/// </summary>
public sealed class FaultyProxy : IDisposable
{
    private readonly Socket listener;
    private readonly string target;
    private readonly long faultAt;
    private readonly ProxyFault fault;
    private readonly Task pump;

    public FaultyProxy(string listenPath, string targetPath, long faultAt, ProxyFault fault)
    {
        this.target = targetPath;
        this.faultAt = faultAt;
        this.fault = fault;
        listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(listenPath));
        listener.Listen(1);
        pump = Task.Run(Run);
    }

    /// <summary>Bytes of the main stream forwarded so far.</summary>
    public long Forwarded { get; private set; }

    private async Task Run()
    {
        using Socket source = await listener.AcceptAsync();
        using var destination = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await destination.ConnectAsync(new UnixDomainSocketEndPoint(target));

        // Return path: copied untouched until either side goes away.
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

        byte[] forward = new byte[65536];
        try
        {
            int read;
            while ((read = await source.ReceiveAsync(forward)) > 0)
            {
                int count = read;
                if (Forwarded + read > faultAt)
                {
                    count = (int)(faultAt - Forwarded);
                    if (fault == ProxyFault.FlipBit)
                    {
                        forward[count] ^= 0x10;
                        await destination.SendAsync(forward.AsMemory(0, read));
                        Forwarded += read;

                        // Keep forwarding the rest faithfully: only the one bit is wrong.
                        while ((read = await source.ReceiveAsync(forward)) > 0)
                        {
                            await destination.SendAsync(forward.AsMemory(0, read));
                        }

                        break;
                    }

                    await destination.SendAsync(forward.AsMemory(0, count));
                    Forwarded += count;
                    break;
                }

                await destination.SendAsync(forward.AsMemory(0, count));
                Forwarded += count;
            }
        }
        catch (SocketException)
        {
        }

        source.Shutdown(SocketShutdown.Both);
        destination.Shutdown(SocketShutdown.Both);
        await Task.WhenAny(back, Task.Delay(5000));
    }

    public void Dispose()
    {
        listener.Dispose();
        pump.Wait(TimeSpan.FromSeconds(10));
    }
}

public enum ProxyFault
{
    /// <summary>Forward up to the fault point, then close both directions.</summary>
    Drop,

    /// <summary>Flip one bit at the fault point and forward everything.</summary>
    FlipBit,
}
