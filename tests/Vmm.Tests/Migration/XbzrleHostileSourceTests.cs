using Vmm.Migration;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// Issue 18's spirit for the xbzrle capability's delta pages: a source that sends a delta the destination cannot apply
/// — malformed, for a page it never received, outside precopy, with a bad checksum — fails the incoming migration with
/// an Error record (exit status 8: no guest ran), never crashes it, never writes outside the page.
/// </summary>
public sealed class XbzrleHostileSourceTests : IDisposable
{
    private const ulong Target = 0x7000;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-xbzrle-hostile-").FullName;

    private static readonly byte[] Data = [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 7 + 1))];

    [Fact]
    public void ADeltaAppliesOntoThePageLastSent()
    {
        using FakeSource source = FakeSource.Start(dir);
        PageRecord.Write(source.Writer, 0, Target, Data);
        byte[] expected = (byte[])Data.Clone();
        expected[5] = 0xEE;
        expected[4095] = 0xDD;
        byte[] delta = new byte[64];
        int length = XbzrleEncoding.Encode(Data, expected, delta, delta.Length);
        PageRecord.WriteDelta(source.Writer, 0, Target, delta.AsSpan(0, length));

        // Then something refused, so that the test knows when the delta before it was applied.
        PageRecord.WriteDelta(source.Writer, 0, 0x9000, [0, 1, 1]);
        source.Writer.Flush();
        source.ExpectFailed("which holds no data received in this migration");
        Assert.Equal(expected, Read(source, Target));
    }

    [Fact]
    public void ADeltaForAPageNeverReceivedIsAProtocolError()
    {
        using FakeSource source = FakeSource.Start(dir);
        PageRecord.WriteDelta(source.Writer, 0, Target, [0, 1, 1]);
        source.Writer.Flush();
        source.ExpectFailed("protocol error: an XBZRLE delta for page 0x7000 of block 'pc.ram', which holds no data received in this migration");
        Assert.True(Read(source, Target).All(b => b == 0));
    }

    [Fact]
    public void ADeltaForAPageLastSentAsZerosIsAProtocolError()
    {
        using FakeSource source = FakeSource.Start(dir);
        PageRecord.Write(source.Writer, 0, Target, Data);
        PageRecord.WriteZeros(source.Writer, 0, Target, 4096);
        PageRecord.WriteDelta(source.Writer, 0, Target, [0, 1, 1]);
        source.Writer.Flush();
        source.ExpectFailed("which holds no data received in this migration");
    }

    [Theory]
    [InlineData(new byte[] { 0xFF, 0x1F, 0x02, 1, 2 }, "a run past the end of the page")]
    [InlineData(new byte[] { 0, 0x81, 0x20, 1 }, "a run past the end of the page")]
    [InlineData(new byte[] { 0, 0x80 }, "a varint cut off at the end of the delta")]
    [InlineData(new byte[] { 0x80, 0x80, 0x01, 1, 1 }, "a varint longer than 2 bytes")]
    [InlineData(new byte[] { 0x81, 0x00, 1, 1 }, "an overlong varint")]
    [InlineData(new byte[] { 0, 8, 1, 2 }, "8 changed bytes announced, 2 present")]
    public void AMalformedDeltaIsRefusedAndNothingPastThePageIsWritten(byte[] delta, string expected)
    {
        using FakeSource source = FakeSource.Start(dir);
        PageRecord.Write(source.Writer, 0, Target, Data);
        PageRecord.Write(source.Writer, 0, Target + 4096, Data);
        PageRecord.WriteDelta(source.Writer, 0, Target, delta);
        source.Writer.Flush();
        source.ExpectFailed($"corrupt migration stream: XBZRLE delta: {expected}");
        Assert.Equal(Data, Read(source, Target + 4096));
    }

    /// <summary>One record carries the deltas of consecutive pages; a length of 0 says the page is unchanged.</summary>
    [Fact]
    public void ARunOfDeltasAppliesPageAfterPage()
    {
        using FakeSource source = FakeSource.Start(dir);
        PageRecord.Write(source.Writer, 0, Target, Data);
        PageRecord.Write(source.Writer, 0, Target + 4096, Data);
        PageRecord.Write(source.Writer, 0, Target + 8192, Data);
        PageRecord.WriteDeltas(source.Writer, 0, Target, 3, [3, 0, 0, 1, 0xA1, 0, 0, 4, 0, 0xFF, 0x1F, 1, 0xA3]);
        PageRecord.WriteDelta(source.Writer, 0, 0x20000, [0, 1, 1]);
        source.Writer.Flush();
        source.ExpectFailed("which holds no data received in this migration");
        Assert.Equal(0xA1, Read(source, Target)[0]);
        Assert.Equal(Data, Read(source, Target + 4096));
        Assert.Equal(0xA3, Read(source, Target + 8192)[4095]);
        Assert.Equal(Data.AsSpan(0, 4095).ToArray(), Read(source, Target + 8192)[..4095]);
    }

    [Theory]
    [InlineData(8192u, new byte[] { 3, 0, 0, 1, 1 }, "the deltas of a Page record end before its 2 pages do")]
    [InlineData(4096u, new byte[] { 3, 0, 0, 1 }, "the deltas of a Page record end before its 1 pages do")]
    [InlineData(4096u, new byte[] { 3 }, "the deltas of a Page record end before its 1 pages do")]
    [InlineData(4096u, new byte[] { 3, 0, 0, 1, 1, 7 }, "1 unexpected trailing bytes after the deltas of a Page record")]
    [InlineData(2048u, new byte[] { 3, 0, 0, 1, 1 }, "an XBZRLE delta Page record of length 2048 (deltas are of whole 4096-byte pages)")]
    [InlineData(0u, new byte[] { 3, 0, 0, 1, 1 }, "an XBZRLE delta Page record of length 0")]
    public void DeltasThatDoNotMatchTheRecordLengthAreCorrupt(uint length, byte[] deltas, string expected)
    {
        using FakeSource source = FakeSource.Start(dir);
        PageRecord.Write(source.Writer, 0, Target, Data);
        PageRecord.Write(source.Writer, 0, Target + 4096, Data);
        source.Send(RecordType.Page, [.. Head(Target, length, PageRecord.FlagDelta), .. deltas]);
        source.ExpectFailed(expected);
        Assert.Equal(Data, Read(source, Target + 4096));
    }

    [Fact]
    public void DeltaAndZeroFlagsTogetherAreUnknown()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.Send(RecordType.Page, [.. Head(Target, 4096, PageRecord.FlagDelta | PageRecord.FlagZero)]);
        source.ExpectFailed("corrupt migration stream: unknown page flags 0x05");
    }

    /// <summary>The delta is in the record: with a bad CRC it is refused before it touches the page.</summary>
    [Fact]
    public void ADeltaWithABadChecksumChangesNothing()
    {
        using FakeSource source = FakeSource.Start(dir);
        PageRecord.Write(source.Writer, 0, Target, Data);
        source.SendWithBadChecksum(writer => PageRecord.WriteDelta(writer, 0, Target, [0, 4, 9, 9, 9, 9]));
        source.ExpectFailed("CRC-32C mismatch in a Page record");
        Assert.Equal(Data, Read(source, Target));
    }

    [Fact]
    public void ADeltaAfterPostcopyListenIsAProtocolError()
    {
        using FakeSource source = FakeSource.Start(dir);
        SendDataThenAdvise(source);
        source.Send(RecordType.PostcopyListen, []);
        PageRecord.WriteDelta(source.Writer, 0, Target, [0, 1, 1]);
        source.Writer.Flush();
        source.ExpectFailed("protocol error: an XBZRLE delta Page record outside precopy");
    }

    /// <summary>A discard makes pages stale here: a delta against what a page held before it would be applied to the wrong bytes.</summary>
    [Fact]
    public void ADeltaAfterAPostcopyDiscardIsAProtocolError()
    {
        using FakeSource source = FakeSource.Start(dir);
        SendDataThenAdvise(source);
        DiscardRecord.Write(source.Writer, 0, [(1ul << 20, 1ul << 20)]);
        PageRecord.WriteDelta(source.Writer, 0, Target, [0, 1, 1]);
        source.Writer.Flush();
        source.ExpectFailed("protocol error: an XBZRLE delta Page record outside precopy");
    }

    /// <summary>Between PostcopyAdvise and the first discard the migration may still end as a precopy: deltas apply.</summary>
    [Fact]
    public void ADeltaAfterPostcopyAdviseStillApplies()
    {
        using FakeSource source = FakeSource.Start(dir);
        SendDataThenAdvise(source);
        PageRecord.WriteDelta(source.Writer, 0, Target, [0, 1, 0xAB]);
        PageRecord.WriteDelta(source.Writer, 0, 0x9000, [0, 1, 1]);
        source.Writer.Flush();
        source.ExpectFailed("which holds no data received in this migration");
        Assert.Equal(0xAB, Read(source, Target)[0]);
    }

    /// <summary>A data page at <see cref="Target"/> (so a delta has a base), then PostcopyAdvise, accepted.</summary>
    private static void SendDataThenAdvise(FakeSource source)
    {
        PageRecord.Write(source.Writer, 0, Target, Data);
        source.Send(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
        source.ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyAdviseAccepted, "PostcopyAdviseAccepted");
    }

    private static byte[] Head(ulong offset, uint length, byte flags)
    {
        byte[] head = new byte[15];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(head.AsSpan(2), offset);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(10), length);
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
