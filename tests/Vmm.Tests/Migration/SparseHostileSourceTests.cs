using System.Buffers.Binary;
using Vmm.Migration;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// Sparse Page records through a real <see cref="Vmm.Migration.Destination.IncomingMigration"/>: well-formed ones
/// replace whole pages, in precopy and after the switchover; a malformed one, a bad length, a flag combination or a
/// bad checksum fails the migration (before PostcopyRun) or pauses it (after), never writing outside its pages.
/// </summary>
public sealed class SparseHostileSourceTests : IDisposable
{
    private const ulong Target = 0x7000;

    /// <summary>In the range <see cref="FakeSource.RunPostcopy"/> discards: missing on the destination after the switchover.</summary>
    private const ulong Missing = 8 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-sparse-hostile-").FullName;

    private static readonly byte[] Data = [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 7 + 1))];

    [Fact]
    public void ASparsePageReplacesTheWholePageInPrecopy()
    {
        using FakeSource source = FakeSource.Start(dir);
        PageRecord.Write(source.Writer, 0, Target, Data);
        byte[] expected = new byte[4096];
        expected[0] = 0xAB;
        expected[4000] = 0xCD;
        PageRecord.WriteSparsePage(source.Writer, 0, Target, expected);

        // Then something refused, so that the test knows when the record before it was applied.
        source.Writer.Flush();
        source.Send(RecordType.Page, [.. Head(Target, 4096, PageRecord.FlagSparse), 1, 0]);
        source.ExpectFailed("the encodings of a sparse Page record end before its 1 pages do");
        Assert.Equal(expected, Read(source, Target));
    }

    /// <summary>One record carries consecutive pages; a length of 0 is a page of zeros.</summary>
    [Fact]
    public void ARunOfSparsePagesAppliesPageAfterPage()
    {
        using FakeSource source = FakeSource.Start(dir);
        PageRecord.Write(source.Writer, 0, Target + 4096, Data);
        PageRecord.WriteSparse(source.Writer, 0, Target, 3, [3, 0, 0, 1, 0xA1, 0, 0, 4, 0, 0xFF, 0x1F, 1, 0xA3]);
        source.Writer.Flush();
        source.Send(RecordType.Page, [.. Head(Target, 0, PageRecord.FlagSparse)]);
        source.ExpectFailed("a sparse Page record of length 0");
        Assert.Equal(0xA1, Read(source, Target)[0]);
        Assert.Equal(1, Read(source, Target).Count(b => b != 0));
        Assert.True(Read(source, Target + 4096).All(b => b == 0));
        Assert.Equal(0xA3, Read(source, Target + 8192)[4095]);
        Assert.Equal(1, Read(source, Target + 8192).Count(b => b != 0));
    }

    [Theory]
    [InlineData(new byte[] { 5, 0, 0xFF, 0x1F, 0x02, 1, 2 }, "sparse page: a run past the end of the page")]
    [InlineData(new byte[] { 4, 0, 0, 0x81, 0x20, 1 }, "sparse page: a run past the end of the page")]
    [InlineData(new byte[] { 2, 0, 0, 0x80 }, "sparse page: a varint cut off at the end of the delta")]
    [InlineData(new byte[] { 5, 0, 0x80, 0x80, 0x01, 1, 1 }, "sparse page: a varint longer than 2 bytes")]
    [InlineData(new byte[] { 4, 0, 0x81, 0x00, 1, 1 }, "sparse page: an overlong varint")]
    [InlineData(new byte[] { 4, 0, 0, 8, 1, 2 }, "sparse page: 8 changed bytes announced, 2 present")]
    [InlineData(new byte[] { 6, 0, 0, 1, 9, 0, 1, 9 }, "sparse page: an unchanged run of 0 bytes after the first pair")]
    [InlineData(new byte[] { 9, 0, 0, 1, 1 }, "the encodings of a sparse Page record end before its 1 pages do")]
    [InlineData(new byte[] { 3 }, "the encodings of a sparse Page record end before its 1 pages do")]
    [InlineData(new byte[] { 3, 0, 0, 1, 1, 7 }, "1 unexpected trailing bytes after the encodings of a sparse Page record")]
    public void AMalformedSparsePageIsRefusedAndNothingPastThePageIsWritten(byte[] encodings, string expected)
    {
        using FakeSource source = FakeSource.Start(dir);
        PageRecord.Write(source.Writer, 0, Target - 4096, Data);
        PageRecord.Write(source.Writer, 0, Target + 4096, Data);
        source.Writer.Flush();
        source.Send(RecordType.Page, [.. Head(Target, 4096, PageRecord.FlagSparse), .. encodings]);
        source.ExpectFailed($"corrupt migration stream: {expected}");
        Assert.Equal(Data, Read(source, Target - 4096));
        Assert.Equal(Data, Read(source, Target + 4096));
    }

    [Theory]
    [InlineData(0u, "a sparse Page record of length 0 (sparse records are of 1 to 64 whole 4096-byte pages)")]
    [InlineData(2048u, "a sparse Page record of length 2048")]
    [InlineData(65u * 4096, "a sparse Page record of length 266240")]
    public void ASparseRecordOfABadLengthIsCorrupt(uint length, string expected)
    {
        using FakeSource source = FakeSource.Start(dir);
        source.Send(RecordType.Page, [.. Head(Target, length, PageRecord.FlagSparse), 0, 0]);
        source.ExpectFailed($"corrupt migration stream: {expected}");
    }

    [Fact]
    public void ASparseRecordOutsideTheBlockIsCorrupt()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.Send(RecordType.Page, [.. Head((16 << 20) - 4096, 8192, PageRecord.FlagSparse), 0, 0, 0, 0]);
        source.ExpectFailed("corrupt migration stream: page [0xfff000, +0x2000) is outside block 'pc.ram'");
    }

    [Theory]
    [InlineData((byte)(PageRecord.FlagSparse | PageRecord.FlagZero), "0x09")]
    [InlineData((byte)(PageRecord.FlagSparse | PageRecord.FlagShared), "0x0a")]
    [InlineData((byte)(PageRecord.FlagSparse | PageRecord.FlagDelta), "0x0c")]
    [InlineData((byte)0x10, "0x10")]
    public void SparseWithAnotherFlagIsUnknown(byte flags, string shown)
    {
        using FakeSource source = FakeSource.Start(dir);
        source.Send(RecordType.Page, [.. Head(Target, 4096, flags), 0, 0]);
        source.ExpectFailed($"corrupt migration stream: unknown page flags {shown}");
    }

    /// <summary>The encodings are in the record: with a bad CRC it is refused before it touches the page.</summary>
    [Fact]
    public void ASparsePageWithABadChecksumChangesNothing()
    {
        using FakeSource source = FakeSource.Start(dir);
        PageRecord.Write(source.Writer, 0, Target, Data);
        source.SendWithBadChecksum(writer => PageRecord.WriteSparse(writer, 0, Target, 1, [3, 0, 0, 1, 9]));
        source.ExpectFailed("CRC-32C mismatch in a Page record");
        Assert.Equal(Data, Read(source, Target));
    }

    /// <summary>After the switchover a sparse run is placed like a data run: a missing page gets it, a page here keeps its bytes.</summary>
    [Fact]
    public void AfterTheSwitchoverASparseRunFillsMissingPagesOnly()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.RunPostcopy();
        byte[] low = new byte[4096];
        Assert.Equal(4096, source.Destination.Machine.Memory.Read(0, low));

        // Page 0 (received in precopy) and the first two missing pages of the discarded range.
        PageRecord.WriteSparse(source.Writer, 0, 0, 1, [3, 0, 0, 1, 0x77]);
        PageRecord.WriteSparse(source.Writer, 0, Missing, 2, [3, 0, 0, 1, 0x55, 4, 0, 0xFF, 0x1F, 1, 0x66]);
        source.Writer.Flush();
        source.Send(RecordType.Page, [.. Head(Missing + 8192, 4096, PageRecord.FlagSparse), 0, 0, 9]);
        source.ExpectPaused("corrupt migration stream: 1 unexpected trailing bytes after the encodings of a sparse Page record");

        Assert.Equal(low, Read(source, 0));
        byte[] first = Read(source, Missing);
        Assert.Equal(0x55, first[0]);
        Assert.Equal(1, first.Count(b => b != 0));
        byte[] second = Read(source, Missing + 4096);
        Assert.Equal(0x66, second[4095]);
        Assert.Equal(1, second.Count(b => b != 0));
        Assert.Equal(3ul, source.Destination.Machine.Migration.Stats!.SparsePages);
    }

    [Theory]
    [InlineData(new byte[] { 2, 0, 0, 0x80 }, "corrupt migration stream: sparse page: a varint cut off at the end of the delta")]
    [InlineData(new byte[] { 0, 0, 0, 0 }, "corrupt migration stream: 2 unexpected trailing bytes after the encodings of a sparse Page record")]
    public void AMalformedSparseRunAfterTheSwitchoverPausesAndKeepsTheGuest(byte[] encodings, string expected)
    {
        using FakeSource source = FakeSource.Start(dir);
        source.RunPostcopy();
        source.Send(RecordType.Page, [.. Head(Missing, 4096, PageRecord.FlagSparse), .. encodings]);
        source.ExpectPaused(expected);
    }

    private static byte[] Head(ulong offset, uint length, byte flags)
    {
        byte[] head = new byte[15];
        BinaryPrimitives.WriteUInt64LittleEndian(head.AsSpan(2), offset);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(10), length);
        head[14] = flags;
        return head;
    }

    private static byte[] Read(FakeSource source, ulong address)
    {
        byte[] page = new byte[4096];
        Assert.Equal(page.Length, source.Destination.Machine.Memory.Read(address, page));
        return page;
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);
}
