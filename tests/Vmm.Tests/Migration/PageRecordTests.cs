using Vmm.Migration;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>The Page record's three shapes (data, zero run, run in the shared ring) and the flags it refuses.</summary>
public class PageRecordTests
{
    [Fact]
    public void ASharedRingRunCarriesItsPositionAndChecksumAndNoData()
    {
        PageRecord.Parsed page = PageRecord.Read(RoundTrip(writer => PageRecord.WriteShared(writer, 3, 0x20000, 0x40000, 0x1234_5678_9000, 0xCAFEF00D)));

        Assert.Equal(3, page.BlockIndex);
        Assert.Equal(0x20000ul, page.Offset);
        Assert.Equal(0x40000u, page.Length);
        Assert.False(page.Zero);
        Assert.True(page.Data.IsEmpty);
        Assert.Equal((0x1234_5678_9000ul, 0xCAFEF00Du), page.Shared);
    }

    [Fact]
    public void DataAndZeroRunsHaveNoRingPosition()
    {
        byte[] data = [.. Enumerable.Range(0, 4096).Select(i => (byte)(i + 1))];
        PageRecord.Parsed withData = PageRecord.Read(RoundTrip(writer => PageRecord.WriteData(writer, 0, 4096, data)));
        PageRecord.Parsed zeros = PageRecord.Read(RoundTrip(writer => PageRecord.WriteZeros(writer, 0, 0, 1 << 20)));

        Assert.Null(withData.Shared);
        Assert.True(withData.Data.SequenceEqual(data));
        Assert.Null(zeros.Shared);
        Assert.True(zeros.Zero);
    }

    [Theory]
    [InlineData(PageRecord.FlagZero | PageRecord.FlagShared)]
    [InlineData(PageRecord.FlagDelta | PageRecord.FlagZero)]
    [InlineData(PageRecord.FlagDelta | PageRecord.FlagShared)]
    [InlineData(PageRecord.FlagSparse | PageRecord.FlagZero)]
    [InlineData(PageRecord.FlagSparse | PageRecord.FlagDelta)]
    [InlineData(0x10)]
    [InlineData(0x80)]
    public void UnknownOrContradictoryFlagsAreRefused(byte flags)
    {
        Vmm.Migration.Stream.Record record = RoundTrip(writer =>
        {
            var payload = writer.Begin(RecordType.Page);
            payload.U16(0);
            payload.U64(0);
            payload.U32(4096);
            payload.U8(flags);
            payload.U64(0);
            payload.U32(0);
            payload.Commit();
        });

        // Record is a ref struct: no lambda for Assert.Throws.
        string? refused = null;
        try
        {
            PageRecord.Read(record);
        }
        catch (MigrationStreamException e)
        {
            refused = e.Message;
        }

        Assert.Contains("page flags", refused);
    }

    private static Vmm.Migration.Stream.Record RoundTrip(Action<RecordWriter> write)
    {
        var stream = new MemoryStream();
        var writer = new RecordWriter(stream);
        write(writer);
        writer.Flush();
        stream.Position = 0;
        return new RecordReader(stream).Read();
    }
}
