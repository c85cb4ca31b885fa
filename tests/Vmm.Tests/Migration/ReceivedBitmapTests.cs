using Vmm.Migration;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Source;
using Vmm.Migration.Stream;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// The received bitmap of a postcopy recovery, as the source takes it: written and read back through real records, and
/// every bitmap that does not fit the layout (wrong block, a gap, too many pages, stray bits, a corrupt record) refused
/// before the dirty bitmaps are touched.
/// </summary>
public class ReceivedBitmapTests
{
    private const ulong Memory = 16 << 20;

    [Fact]
    public void ABitmapRoundTripsThroughItsRecordsAndMakesExactlyTheMissingPagesDirty()
    {
        using TestMachine machine = TestMachine.Create(Memory);
        RamBlock block = machine.Machine.Ram.Blocks[0];
        ulong pages = block.UsedLength / block.PageSize;
        var received = new DirtyBitmap(pages);
        received.SetRange(0, pages);
        received.Clear(3);
        received.Clear(pages - 1);

        var assembler = new ReceivedBitmapAssembler(machine.Machine.Ram.Blocks);
        foreach ((int index, ulong first, uint count, byte[] bits) in RoundTrip(w => ReceivedBitmapRecord.Write(w, 0, received, pages)))
        {
            assembler.Add(index, first, count, bits);
        }

        assembler.Finish(machine.Machine.Ram.Blocks.Count);
        block.DirtyBitmap.SetRange(0, pages);
        Assert.Equal(2ul, assembler.ApplyToDirty());
        Assert.True(block.DirtyBitmap.IsSet(3));
        Assert.True(block.DirtyBitmap.IsSet(pages - 1));
        Assert.False(block.DirtyBitmap.IsSet(4));
    }

    [Fact]
    public void BitmapsThatDoNotFitTheLayoutAreRefused()
    {
        using TestMachine machine = TestMachine.Create(Memory);
        IReadOnlyList<RamBlock> blocks = machine.Machine.Ram.Blocks;
        ulong pages = blocks[0].UsedLength / blocks[0].PageSize;
        byte[] all = new byte[(pages + 7) / 8];

        // Another block than the one due.
        Assert.Contains("block index 7", Assert.Throws<MigrationStreamException>(() => new ReceivedBitmapAssembler(blocks).Add(7, 0, 8, [0xFF])).Message);

        // A gap, and more pages than the block has (a bitmap for another layout).
        Assert.Contains("were due", Assert.Throws<MigrationStreamException>(() => new ReceivedBitmapAssembler(blocks).Add(0, 8, 8, [0xFF])).Message);
        Assert.Contains("were due", Assert.Throws<MigrationStreamException>(() => new ReceivedBitmapAssembler(blocks).Add(0, 0, (uint)pages + 8, new byte[all.Length + 1])).Message);

        // Incomplete, or a block count that is not the layout's.
        var half = new ReceivedBitmapAssembler(blocks);
        half.Add(0, 0, 8, [0xFF]);
        Assert.Throws<MigrationStreamException>(() => half.Finish(blocks.Count));
        var whole = new ReceivedBitmapAssembler(blocks);
        whole.Add(0, 0, (uint)pages, all);
        Assert.Throws<MigrationStreamException>(() => whole.Finish(blocks.Count + 1));
    }

    [Fact]
    public void ARecordWithBitsPastItsCountOrACorruptChecksumIsRefused()
    {
        // Three pages, but bit 5 set.
        byte[] stray = Record(w =>
        {
            var payload = w.Begin(RecordType.PostcopyReceivedBitmap);
            payload.U16(0);
            payload.U64(0);
            payload.U32(3);
            payload.U8(0b0010_0001);
            payload.Commit();
        });
        Assert.Contains("past its page count", Assert.Throws<MigrationStreamException>(() => ReadBitmap(stray)).Message);

        var bits = new DirtyBitmap(64);
        bits.SetRange(0, 64);
        byte[] good = Record(w => ReceivedBitmapRecord.Write(w, 0, bits, 64));
        good[12] ^= 0x10;
        Assert.Contains("CRC-32C mismatch", Assert.Throws<MigrationStreamException>(() => ReadBitmap(good)).Message);
    }

    private static (int, ulong, uint, byte[]) ReadBitmap(byte[] bytes)
    {
        Vmm.Migration.Stream.Record record = new RecordReader(new MemoryStream(bytes)).Read();
        return ReceivedBitmapRecord.Read(record.Reader());
    }

    private static byte[] Record(Action<RecordWriter> write)
    {
        var stream = new MemoryStream();
        var writer = new RecordWriter(stream);
        write(writer);
        writer.Flush();
        return stream.ToArray();
    }

    private static List<(int, ulong, uint, byte[])> RoundTrip(Action<RecordWriter> write)
    {
        var reader = new RecordReader(new MemoryStream(Record(write)));
        var stretches = new List<(int, ulong, uint, byte[])>();
        while (true)
        {
            try
            {
                Vmm.Migration.Stream.Record record = reader.Read();
                stretches.Add(ReceivedBitmapRecord.Read(record.Reader()));
            }
            catch (MigrationStreamException e) when (e.Message.StartsWith("truncated", StringComparison.Ordinal))
            {
                return stretches;
            }
        }
    }
}
