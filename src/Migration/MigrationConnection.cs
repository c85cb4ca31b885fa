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

    private MigrationConnection(Socket socket)
    {
        this.socket = socket;
        network = new NetworkStream(socket, ownsSocket: false);
        output = new BufferedStream(network, 1 << 20);
        Writer = new RecordWriter(output);
        InputStream = new BufferedStream(network, InputBufferSize);
        Reader = new RecordReader(InputStream);
    }

    public RecordWriter Writer { get; }

    public RecordReader Reader { get; }

    /// <summary>The buffered input, for the stream header.</summary>
    public BufferedStream InputStream { get; }

    public System.IO.Stream OutputStream => output;

    public static MigrationConnection Connect(MigrationUri uri, TimeSpan timeout)
    {
        Socket socket = uri.CreateSocket();
        try
        {
            using var cancel = new CancellationTokenSource(timeout);
            socket.ConnectAsync(uri.EndPoint, cancel.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            string why = e is OperationCanceledException ? $"no answer within {timeout.TotalSeconds:F0} s" : ((SocketException)e).Message;
            throw new MigrationFailedException($"cannot connect to {uri.Text}: {why}", e);
        }

        return new MigrationConnection(socket);
    }

    public static MigrationConnection Accept(Socket listener) => new(listener.Accept());

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
