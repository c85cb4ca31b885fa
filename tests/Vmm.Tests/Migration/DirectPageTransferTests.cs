using System.Buffers.Binary;
using System.Net.Sockets;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// The copy-free page path: the source writes the last precopy pages from guest memory as it lies
/// (<see cref="RecordWriter.WriteStable"/>), the destination reads page data straight into guest memory
/// (<see cref="RecordReader.DirectPages"/>). Neither may change a byte on the wire or weaken a check: a record whose
/// checksum fails, or that stops half-way, still fails the migration before any guest runs here.
/// </summary>
public sealed class DirectPageTransferTests : IDisposable
{
    private const int RunBytes = 64 * 1024;
    private const ulong Offset = 2 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-direct-page-").FullName;

    /// <summary>A record written from stable memory is the same bytes as one copied through the buffer.</summary>
    [Fact]
    public void AStableRecordIsTheSameBytesAsACopiedOne()
    {
        byte[] data = Pattern(RecordWriter.DirectMinimum * 3);
        byte[] copied = Records(writer => PageRecord.WriteData(writer, 1, 0x1000, data));

        var sink = new MemoryStream();
        var buffered = new BufferedStream(sink, 1 << 20);
        var direct = new RecordWriter(buffered, direct: sink);
        PageRecord.WriteZeros(direct, 0, 0, 4096); // buffered before the direct record: it must go out first
        PageRecord.WriteData(direct, 1, 0x1000, data, stable: true);
        PageRecord.WriteZeros(direct, 0, 0, 4096); // and the checksum of the direct one before this
        direct.Flush();

        byte[] expected = Records(writer =>
        {
            PageRecord.WriteZeros(writer, 0, 0, 4096);
            PageRecord.WriteData(writer, 1, 0x1000, data);
            PageRecord.WriteZeros(writer, 0, 0, 4096);
        });
        Assert.Equal(expected, sink.ToArray());
        Assert.NotEmpty(copied);
    }

    /// <summary>
    /// The reader puts a data record's bytes where its target says, verifies the checksum over them there, and hands
    /// on only the head; a corrupt checksum is still corruption; records the target declines come the usual way.
    /// </summary>
    [Fact]
    public void TheReaderPlacesDataWhereTheTargetSaysAndStillChecksIt()
    {
        byte[] data = Pattern(RunBytes);
        byte[] memory = new byte[RunBytes];
        byte[] good = Records(writer =>
        {
            PageRecord.WriteData(writer, 0, Offset, data);
            PageRecord.WriteData(writer, 0, Offset + RunBytes, data); // declined below: into the buffer
        });
        var reader = new RecordReader(new MemoryStream(good))
        {
            DirectPages = head => PageRecord.DataHead(head) is { Offset: Offset } ? memory : default,
        };
        Vmm.Migration.Stream.Record placed = reader.Read();
        Assert.True(placed.Placed);
        PageRecord.Parsed page = PageRecord.Read(placed);
        Assert.True(page.Placed);
        Assert.Equal((uint)RunBytes, page.Length);
        Assert.Equal(data, memory);
        Vmm.Migration.Stream.Record copied = reader.Read();
        Assert.False(copied.Placed);
        Assert.Equal(data, PageRecord.Read(copied).Data.ToArray());

        byte[] bad = PageBytes(0, Offset, data);
        bad[^2] ^= 1;
        var checking = new RecordReader(new MemoryStream(bad)) { DirectPages = _ => memory };
        var e = Assert.Throws<MigrationStreamException>(() => checking.Read());
        Assert.Contains("CRC-32C mismatch in a Page record", e.Message);
    }

    /// <summary>A data run read straight into guest memory arrives byte for byte, and the guest runs on after End.</summary>
    [Fact]
    public void ARunReadIntoGuestMemoryArrivesIntact()
    {
        using FakeSource source = FakeSource.Start(dir);
        (IReadOnlyList<StateSection> sections, byte[] low) = FakeSource.Origin();
        for (int offset = 0; offset < low.Length; offset += 4096)
        {
            PageRecord.Write(source.Writer, 0, (ulong)offset, low.AsSpan(offset, 4096));
        }

        byte[] data = Pattern(RunBytes);
        PageRecord.WriteData(source.Writer, 0, Offset, data);
        foreach (StateSection section in sections)
        {
            section.Write(source.Writer);
        }

        source.Seal(RecordType.End);
        source.ReturnPath.WaitFor(r => r.Type == RecordType.Complete, "Complete");
        Assert.True(source.Ended(TimeSpan.FromSeconds(30)));
        Assert.Null(source.IncomingError);
        source.Destination.Machine.Pause();
        byte[] arrived = new byte[RunBytes];
        Assert.Equal(RunBytes, source.Destination.Machine.Memory.Read(Offset, arrived));
        Assert.Equal(data, arrived);
    }

    /// <summary>A corrupt checksum on a run already read into guest memory fails the migration; no guest runs here.</summary>
    [Fact]
    public void ACorruptChecksumOnADirectRunFailsTheMigration()
    {
        using FakeSource source = FakeSource.Start(dir);
        byte[] record = PageBytes(0, Offset, Pattern(RunBytes));
        record[^1] ^= 0x40;
        source.SendRaw(record);
        source.ExpectFailed("corrupt migration stream: CRC-32C mismatch in a Page record");
        Assert.Equal(0ul, source.Destination.Machine.Migration.Stats!.NormalPages);
    }

    /// <summary>A flipped data byte is caught the same way (the checksum covers what was read into guest memory).</summary>
    [Fact]
    public void AFlippedDataByteInADirectRunFailsTheMigration()
    {
        using FakeSource source = FakeSource.Start(dir);
        byte[] record = PageBytes(0, Offset, Pattern(RunBytes));
        record[5 + 15 + 1000] ^= 1;
        source.SendRaw(record);
        source.ExpectFailed("corrupt migration stream: CRC-32C mismatch in a Page record");
    }

    /// <summary>A source that stops in the middle of a run's data: truncation, the migration fails, no guest runs here.</summary>
    [Fact]
    public void AConnectionThatEndsInsideADirectRunFailsTheMigration()
    {
        using FakeSource source = FakeSource.Start(dir);
        byte[] record = PageBytes(0, Offset, Pattern(RunBytes));
        source.SendRaw(record.AsSpan(0, record.Length / 2));
        source.Connection.Socket.Shutdown(SocketShutdown.Send);
        source.ExpectFailed("truncated migration stream: the connection closed in the middle of a Page record");
    }

    /// <summary>
    /// A run whose head points outside the block is not read into guest memory: it is checked as before, checksum
    /// first, so a corrupt one is reported as corrupt and an intact one as outside the block.
    /// </summary>
    [Theory]
    [InlineData(true, "corrupt migration stream: CRC-32C mismatch in a Page record")]
    [InlineData(false, "is outside block 'pc.ram'")]
    public void ARunOutsideTheBlockIsCheckedAsBefore(bool corrupt, string expected)
    {
        using FakeSource source = FakeSource.Start(dir);
        byte[] record = PageBytes(0, (16 << 20) - (RunBytes / 2), Pattern(RunBytes));
        if (corrupt)
        {
            record[^1] ^= 0x40;
        }

        source.SendRaw(record);
        source.ExpectFailed(expected);
    }

    private static byte[] Pattern(int length)
    {
        byte[] data = new byte[length];
        new Random(15).NextBytes(data);
        data[0] = 1; // never all zeros
        return data;
    }

    private static byte[] Records(Action<RecordWriter> write)
    {
        var stream = new MemoryStream();
        var writer = new RecordWriter(stream);
        write(writer);
        writer.Flush();
        return stream.ToArray();
    }

    /// <summary>One Page data record, framing and checksum included, as raw bytes to corrupt.</summary>
    private static byte[] PageBytes(int block, ulong offset, byte[] data)
    {
        byte[] bytes = Records(writer => PageRecord.WriteData(writer, block, offset, data));
        Assert.Equal(5 + 15 + data.Length + 4, bytes.Length);
        Assert.Equal(~Crc32C.Append(uint.MaxValue, bytes.AsSpan(0, bytes.Length - 4)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4)));
        return bytes;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
