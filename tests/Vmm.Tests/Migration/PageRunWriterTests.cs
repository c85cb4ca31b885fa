using Vmm.Migration;
using Vmm.Migration.Source;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Tests.Migration;

/// <summary>
/// The source's page runs: what a forward walk over pages turns into on the wire, read back with the destination's
/// reader, and whether the zero detector spares pages the guest never populated.
/// </summary>
public sealed class PageRunWriterTests
{
    private const ulong Page = 4096;

    [Fact]
    public void ConsecutivePagesOfOneKindShareARecordUpToTheCap()
    {
        using RamBlock block = RamBlock.Create(new RamBlockSpec("runs.ram", 0, 64 << 20));
        using RamBlock other = RamBlock.Create(new RamBlockSpec("other.ram", 64 << 20, 1 << 20));
        for (ulong page = 0; page < 40; page++)
        {
            block.GetSpan(page * Page, 1)[0] = (byte)(page + 1);
        }

        var stream = new MemoryStream();
        var writer = new RecordWriter(stream);
        var runs = new PageRunWriter(writer);

        // 20 data pages (one record of 16, one of 4), a gap, 20 more data pages and 3 zero pages in a row, then a
        // zero page of another block right after (a new record: another block).
        for (ulong page = 0; page < 20; page++)
        {
            runs.Add(0, block, page * Page, Page, isZero: false);
        }

        for (ulong page = 20; page < 40; page++)
        {
            runs.Add(0, block, (page + 1) * Page, Page, isZero: false);
        }

        for (ulong page = 41; page < 44; page++)
        {
            runs.Add(0, block, page * Page, Page, isZero: true);
        }

        runs.Add(1, other, 0, Page, isZero: true);
        runs.Flush();
        writer.Flush();

        stream.Position = 0;
        var reader = new RecordReader(stream);
        var seen = new List<(int Block, ulong Offset, uint Length, bool Zero, byte[] Data)>();
        while (stream.Position < stream.Length)
        {
            PageRecord.Parsed parsed = PageRecord.Read(reader.Read());
            seen.Add((parsed.BlockIndex, parsed.Offset, parsed.Length, parsed.Zero, parsed.Data.ToArray()));
        }

        Assert.Equal(
            [(0, 0ul, 16u * 4096, false), (0, 16ul * Page, 4u * 4096, false), (0, 21ul * Page, 16u * 4096, false), (0, 37ul * Page, 4u * 4096, false), (0, 41ul * Page, 3u * 4096, true), (1, 0ul, 4096u, true)],
            seen.Select(r => (r.Block, r.Offset, r.Length, r.Zero)).ToArray());
        foreach ((int index, ulong offset, uint length, bool zero, byte[] data) in seen.Where(r => !r.Zero))
        {
            Assert.Equal(block.GetSpan(offset, (int)length).ToArray(), data);
        }
    }

    /// <summary>
    /// With sparse on, each data run (16 pages on the socket) splits into sparse records (mostly-zero pages) and data
    /// records (dense pages), in page order; expanded, they are the block's bytes.
    /// </summary>
    [Fact]
    public void WithSparseOnMostlyZeroPagesGoAsSparseRecordsAndTheRestAsData()
    {
        using RamBlock block = RamBlock.Create(new RamBlockSpec("sparse.ram", 0, 4 << 20));
        const ulong Pages = 100;
        bool Dense(ulong page) => page is 3 or 4 or 90;
        for (ulong page = 0; page < Pages; page++)
        {
            Span<byte> bytes = block.GetSpan(page * Page, (int)Page);
            if (Dense(page))
            {
                Random.Shared.NextBytes(bytes);
            }
            else
            {
                bytes[(int)(page * 41 % Page)] = (byte)(page + 1);
            }
        }

        var stream = new MemoryStream();
        var writer = new RecordWriter(stream);
        var runs = new PageRunWriter(writer, sparse: true);
        for (ulong page = 0; page < Pages; page++)
        {
            runs.Add(0, block, page * Page, Page, isZero: false);
        }

        runs.Flush();
        writer.Flush();

        stream.Position = 0;
        var reader = new RecordReader(stream);
        var seen = new List<(ulong Offset, uint Length, bool Sparse)>();
        byte[] buffer = new byte[64 * Page];
        while (stream.Position < stream.Length)
        {
            PageRecord.Parsed parsed = PageRecord.Read(reader.Read());
            seen.Add((parsed.Offset, parsed.Length, parsed.Sparse));
            Assert.Equal(block.GetSpan(parsed.Offset, (int)parsed.Length).ToArray(), parsed.Expanded(buffer).Data.ToArray());
        }

        Assert.Equal(
            [
                (0ul, 3u * 4096, true), (3 * Page, 2u * 4096, false), (5 * Page, 11u * 4096, true),
                (16 * Page, 16u * 4096, true), (32 * Page, 16u * 4096, true), (48 * Page, 16u * 4096, true), (64 * Page, 16u * 4096, true),
                (80 * Page, 10u * 4096, true), (90 * Page, 4096u, false), (91 * Page, 5u * 4096, true), (96 * Page, 4u * 4096, true),
            ],
            seen);
        Assert.Equal(Pages - 3, runs.SparsePages);
    }

    [Fact]
    public void NeverPopulatedAnonymousPagesAreZeroWithoutBeingRead()
    {
        using RamBlock block = RamBlock.Create(new RamBlockSpec("zero.ram", 0, 4 << 20));
        block.GetSpan(5 * Page, 1)[0] = 1;
        block.GetSpan(7 * Page, 1)[0] = 0;
        using var detector = new ZeroPageDetector();

        Assert.False(detector.IsZero(block, 5));
        Assert.True(detector.IsZero(block, 7));
        Assert.True(detector.IsZero(block, 6));
        Assert.True(detector.IsZero(block, 600, 4));

        // Page 6 was never touched and was answered from the page map: it is still not populated.
        Span<bool> populated = stackalloc bool[8];
        using var pageMap = new PageMap();
        pageMap.Query(block.HostAddress, populated);
        Assert.False(populated[6]);
        Assert.True(populated[7]);

        // A page written after the detector looked is seen once it is told to look again.
        block.GetSpan(6 * Page, 1)[0] = 9;
        detector.Invalidate();
        Assert.False(detector.IsZero(block, 6));
    }
}
