using System.Buffers.Binary;
using System.Net.Sockets;
using Vmm.Migration;
using Vmm.Migration.Stream;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// `dotnet vmm run --incoming` fed by a raw socket writer instead of a source: whatever is wrong with the stream, the
/// destination says so on one line, tells the writer on the return path, exits with status 8, and no guest ever
/// runs there (nothing on its stdout).
/// </summary>
[Collection(MigrationProcessCollection.Name)]
public sealed class PrecopyProcessStreamTests : IDisposable
{
    public enum Corruption
    {
        OtherVersion,
        BadCrc,
        TruncatedPage,
        PageOutsideRam,
        EndWithoutState,
        DiscardSyncWithoutAdvise,
    }

    private const ulong Memory = 16 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-mig-").FullName;

    [Theory]
    [InlineData(Corruption.OtherVersion, "migration stream version 99 is not supported (this vmm speaks version 1)")]
    [InlineData(Corruption.BadCrc, "corrupt migration stream: CRC-32C mismatch in a Setup record")]
    [InlineData(Corruption.TruncatedPage, "truncated migration stream: the connection closed in the middle of a Page record")]
    [InlineData(Corruption.PageOutsideRam, "corrupt migration stream: page [0x1000000, +0x1000) is outside block 'pc.ram'")]
    [InlineData(Corruption.EndWithoutState, "the migration stream lacks state for cpu0")]
    [InlineData(Corruption.DiscardSyncWithoutAdvise, "protocol error: PostcopyDiscardSync without PostcopyAdvise")]
    public void ABadStreamEndsTheDestinationWithStatusEightAndNoGuest(Corruption corruption, string expected)
    {
        using MigrationVmm destination = MigrationVmm.StartDestination(dir, memory: "16M");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 30_000, SendTimeout = 30_000 };
        socket.Connect(new UnixDomainSocketEndPoint(destination.IncomingPath));
        using var network = new NetworkStream(socket, ownsSocket: false);
        var returnPath = new RecordReader(network);

        Send(corruption, network, returnPath);
        socket.Shutdown(SocketShutdown.Send);

        // The destination explains itself to its peer before it goes.
        Vmm.Migration.Stream.Record answer = returnPath.Read();
        Assert.Equal(RecordType.Error, answer.Type);
        Assert.Contains(expected, answer.Reader().String());

        VmmResult result = destination.Process.WaitForExit(TimeSpan.FromSeconds(30));
        Assert.Equal(8, result.ExitCode);
        Assert.Empty(result.StdoutBytes);
        string line = Assert.Single(result.StderrLines);
        Assert.StartsWith("vmm: error: incoming migration failed: ", line);
        Assert.Contains(expected, line);
    }

    /// <summary>
    /// Bytes that cannot begin a stream (a port scanner's HTTP probe, noise) are not a vmm source: the connection is
    /// dropped without an answer and the destination still waits; the next connection is heard as usual.
    /// </summary>
    [Theory]
    [InlineData("GET / HTTP/1.0\r\n\r\n")]
    [InlineData("noise")]
    public void BytesThatAreNotAStreamAreDroppedAndTheWaitGoesOn(string probe)
    {
        using MigrationVmm destination = MigrationVmm.StartDestination(dir, memory: "16M");
        using (var stranger = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 30_000 })
        {
            stranger.Connect(new UnixDomainSocketEndPoint(destination.IncomingPath));
            byte[] bytes = probe == "noise" ? new byte[64 << 10] : System.Text.Encoding.ASCII.GetBytes(probe);
            if (probe == "noise")
            {
                new Random(5).NextBytes(bytes);
                bytes[0] = 0xFF; // surely not the magic's first byte
            }

            stranger.Send(bytes);
            stranger.Shutdown(SocketShutdown.Send);

            // Dropped: no Error record (it was never a migration), just the end of the connection (a reset when the
            // destination closed with our bytes unread).
            byte[] answer = new byte[16];
            try
            {
                Assert.Equal(0, stranger.Receive(answer));
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
            }
        }

        Assert.False(destination.Process.HasExited, "the destination ended on a stranger's bytes");

        // Still listening: the next peer sends the magic, so it is the migration, and its wrong version fails it. Only
        // the header goes: the destination may close before anything after it could be written.
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 30_000, SendTimeout = 30_000 };
        socket.Connect(new UnixDomainSocketEndPoint(destination.IncomingPath));
        using var network = new NetworkStream(socket, ownsSocket: false);
        byte[] header = Header();
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), 99);
        network.Write(header);
        Vmm.Migration.Stream.Record error = new RecordReader(network).Read();
        Assert.Equal(RecordType.Error, error.Type);

        VmmResult result = destination.Process.WaitForExit(TimeSpan.FromSeconds(30));
        Assert.Equal(8, result.ExitCode);
        Assert.Contains(result.StderrLines, l => l.Contains("is not a vmm migration source"));
        Assert.StartsWith("vmm: error: incoming migration failed: ", result.StderrLines[^1]);
    }

    private static void Send(Corruption corruption, NetworkStream network, RecordReader returnPath)
    {
        switch (corruption)
        {
            case Corruption.OtherVersion:
                byte[] header = Header();
                BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), 99);
                // Only the header: the destination may close before anything after it could be written.
                network.Write(header);
                return;

            case Corruption.BadCrc:
                byte[] setup = Records(w => Layout().Write(w));
                setup[^1] ^= 0x5A;
                network.Write(Header());
                network.Write(setup);
                return;
        }

        // The rest start like a real source: header, a matching layout, and the destination accepts it. One writer
        // for all of it, as a source has: End's seal covers every record before it.
        network.Write(Header());
        var writer = new RecordWriter(network);
        Layout().Write(writer);
        writer.Flush();
        Assert.Equal(RecordType.SetupAccepted, returnPath.Read().Type);

        byte[] page = new byte[4096];
        page.AsSpan().Fill(0xA5);
        for (int i = 0; i < 16; i++)
        {
            PageRecord.Write(writer, 0, (ulong)(256 + i) * 4096, page);
        }

        writer.Flush();
        switch (corruption)
        {
            case Corruption.TruncatedPage:
                byte[] one = Records(w => PageRecord.Write(w, 0, 300 * 4096, page));
                network.Write(one.AsSpan(0, one.Length / 2));
                break;

            case Corruption.PageOutsideRam:
                PageRecord.Write(writer, 0, Memory, page);
                break;

            case Corruption.EndWithoutState:
                StreamSeal.Write(writer, RecordType.End);
                break;

            case Corruption.DiscardSyncWithoutAdvise:
                writer.Write(RecordType.PostcopyDiscardSync, []);
                break;
        }

        writer.Flush();
    }

    private static byte[] Header()
    {
        using var stream = new MemoryStream();
        StreamHeader.Write(stream);
        return stream.ToArray();
    }

    private static byte[] Records(Action<RecordWriter> write)
    {
        using var stream = new MemoryStream();
        var writer = new RecordWriter(stream);
        write(writer);
        writer.Flush();
        return stream.ToArray();
    }

    /// <summary>What `run --memory 16M` has: one anonymous block, pc.ram, at 0.</summary>
    private static RamLayout Layout() => new([new RamBlockDescriptor("pc.ram", 0, Memory, Memory, 4096, RamBackend.Anonymous)]);

    public void Dispose()
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
            // Cleaned up with the rest of temp eventually.
        }
    }
}
