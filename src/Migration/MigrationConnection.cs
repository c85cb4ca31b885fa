using System.Net.Sockets;
using Vmm.Migration.Stream;

namespace Vmm.Migration;

/// <summary>
/// One migration connection: the main stream in one direction and the return path in the other, over the same
/// socket. Each direction is used by one thread at a time.
/// </summary>
public sealed class MigrationConnection : IDisposable
{
    /// <summary>
    /// Small records (zero runs, requests) are read 32 KiB at a time; a read at least this large (a run of page data)
    /// bypasses the buffer and goes from the socket straight into the record.
    /// </summary>
    private const int InputBufferSize = 32 * 1024;

    private readonly Socket socket;
    private readonly NetworkStream network;
    private readonly BufferedStream output;

    /// <param name="socket">The connected socket.</param>
    /// <param name="secure">With TLS: wraps the socket's stream (the handshake runs here, bounded by the socket's timeouts).</param>
    private MigrationConnection(Socket socket, Func<System.IO.Stream, System.IO.Stream>? secure = null)
    {
        this.socket = socket;
        MigrationTimeouts.EnableKeepAlive(socket);
        network = new NetworkStream(socket, ownsSocket: false);
        System.IO.Stream transport = network;
        if (secure is not null)
        {
            socket.ReceiveTimeout = socket.SendTimeout = (int)MigrationTls.HandshakeTimeout.TotalMilliseconds;
            transport = secure(network);
            Encrypted = true;
        }

        output = new BufferedStream(transport, 1 << 20);
        Writer = new RecordWriter(output, direct: transport);
        InputStream = new BufferedStream(transport, InputBufferSize);
        Reader = new RecordReader(InputStream);
    }

    /// <summary>The socket, for tests of its options.</summary>
    internal Socket Socket => socket;

    /// <summary>TLS protects this connection: bytes in the socket are not records (no peeking at them).</summary>
    public bool Encrypted { get; }

    public RecordWriter Writer { get; }

    public RecordReader Reader { get; }

    /// <summary>The buffered input, for the stream header.</summary>
    public BufferedStream InputStream { get; }

    public System.IO.Stream OutputStream => output;

    /// <summary>
    /// Connects, giving up after <paramref name="timeout"/>. A blocking connect bounded by the kernel (SO_SNDTIMEO
    /// bounds connect(2) on TCP and on Unix sockets, whose connect waits while the listener's backlog is full), rather
    /// than an asynchronous one waited for: that one completes on the thread pool, which may be busy (in a test run,
    /// for seconds) exactly when a migration starts.
    /// </summary>
    public static MigrationConnection Connect(MigrationUri uri, TimeSpan timeout, MigrationTls? tls = null)
    {
        Socket socket = uri.CreateSocket();
        try
        {
            socket.SendTimeout = (int)Math.Max(1, timeout.TotalMilliseconds);
            socket.Connect(uri.EndPoint);
            socket.SendTimeout = 0;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            string why = e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress or SocketError.TimedOut
                ? $"no answer within {timeout.TotalSeconds:0.###} s"
                : e.Message;
            throw new MigrationFailedException($"cannot connect to {uri.Text}: {why}", e);
        }

        if (tls is null)
        {
            return new MigrationConnection(socket);
        }

        string host = uri.EndPoint switch
        {
            System.Net.DnsEndPoint dns => dns.Host,
            System.Net.IPEndPoint ip => ip.Address.ToString(),
            _ => "localhost",
        };
        try
        {
            return new MigrationConnection(socket, network => tls.AuthenticateAsClient(network, host));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public static MigrationConnection Accept(Socket listener) => new(listener.Accept());

    /// <summary>
    /// Wraps a socket this side accepted itself (after checking it is worth a migration connection); with
    /// <paramref name="tls"/>, as the TLS server (a <see cref="MigrationFailedException"/> if the peer does not verify).
    /// </summary>
    public static MigrationConnection Adopt(Socket socket, MigrationTls? tls = null) =>
        tls is null ? new(socket) : new(socket, tls.AuthenticateAsServer);

    /// <summary>
    /// Bounds every blocking read and write (SO_RCVTIMEO, SO_SNDTIMEO): a peer that goes quiet or stops reading
    /// becomes an error, not a thread blocked forever. Zero means no bound.
    /// </summary>
    public void SetTimeouts(TimeSpan read, TimeSpan write)
    {
        socket.ReceiveTimeout = (int)Math.Min(int.MaxValue, read.TotalMilliseconds);
        socket.SendTimeout = (int)Math.Min(int.MaxValue, write.TotalMilliseconds);
    }
    /// <summary>
    /// Sends <paramref name="data"/> with <paramref name="descriptor"/> attached (SCM_RIGHTS; Unix sockets only),
    /// straight to the socket: call it before anything else is written, or after a flush.
    /// </summary>
    public void SendWithDescriptor(ReadOnlySpan<byte> data, Linux.FileDescriptor descriptor)
    {
        bool added = false;
        try
        {
            descriptor.DangerousAddRef(ref added);
            Linux.SocketRights.Send((int)socket.Handle, data, descriptor.Value);
        }
        finally
        {
            if (added)
            {
                descriptor.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// For a connection this side never reads (the source's preempt channel): the peer has closed it, or it broke.
    /// </summary>
    public bool PeerClosed => socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0;

    /// <summary>
    /// Lets up to <paramref name="bytes"/> wait in the kernel for the peer, so a writer blocks (and is woken) less
    /// often. Past net.core.wmem_max only root can go, with SO_SNDBUFFORCE; otherwise the kernel's cap stands.
    /// </summary>
    public void EnlargeSendBuffer(int bytes)
    {
        const int SoSndBufForce = 32;
        try
        {
            socket.SendBufferSize = bytes;
            if (socket.SendBufferSize < bytes)
            {
                socket.SetRawSocketOption((int)SocketOptionLevel.Socket, SoSndBufForce, BitConverter.GetBytes(bytes));
            }
        }
        catch (SocketException)
        {
            // Not root, or not allowed: the smaller buffer works, only with more wake-ups.
        }
    }

    /// <summary>Ends both directions at once; a thread blocked reading or writing gets an error promptly.</summary>
    public void Abort()
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already gone.
        }
    }

    public void Dispose()
    {
        Abort();
        socket.Dispose();
    }
}
