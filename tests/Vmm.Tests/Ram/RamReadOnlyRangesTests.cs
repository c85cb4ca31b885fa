using Vmm.Accelerator;
using Vmm.Ram;

namespace Vmm.Tests.Ram;

/// <summary>How a ROM range cuts a block's mapped ranges (KVM makes a memslot of each piece).</summary>
public sealed class RamReadOnlyRangesTests : IDisposable
{
    private const ulong Page = DirtyBitmap.PageSize;
    private readonly RamBlock block = RamBlock.CreateAnonymous("pc.ram", 0, 2 << 20);
    private readonly RamReadOnlyRanges ranges = new();

    public void Dispose() => block.Dispose();

    [Fact]
    public void TheBiosRomSplitsTheFirstTwoMegabytesIntoThreePieces()
    {
        ranges.Add(block, 0xF0000, 0x10000);

        Assert.Equal(
            new (ulong, ulong, bool)[] { (0, 0xF0000, false), (0xF0000, 0x10000, true), (0x100000, 0x100000, false) },
            ranges.Split(block, 0, 2 << 20));
        Assert.True(ranges.Contains(block, 0xFFFFF));
        Assert.False(ranges.Contains(block, 0x100000));
    }

    [Fact]
    public void ARangeThatOverlapsTheRomOnlyPartlyGetsOnlyItsShare()
    {
        ranges.Add(block, 0xF0000, 0x10000);

        // What is left of the block around an MMIO hole from 0xF8000: the ROM's first half, then nothing of it.
        Assert.Equal(new (ulong, ulong, bool)[] { (0xE0000, 0x10000, false), (0xF0000, 0x8000, true) }, ranges.Split(block, 0xE0000, 0x18000));
        Assert.Equal(new (ulong, ulong, bool)[] { (0x100000, Page, false) }, ranges.Split(block, 0x100000, Page));
    }

    [Fact]
    public void UnalignedOrOverlappingRangesAreRefused()
    {
        ranges.Add(block, 0xF0000, 0x10000);

        Assert.Throws<ArgumentException>(() => ranges.Add(block, 0x1000, 0x800));
        Assert.Throws<ArgumentException>(() => ranges.Add(block, 0xFF000, 0x2000));
        Assert.Throws<ArgumentException>(() => ranges.Add(block, 0x1FF000, 0x2000));
        ranges.Forget(block);
        Assert.Equal(new (ulong, ulong, bool)[] { (0, 0x1000, false) }, ranges.Split(block, 0, 0x1000));
    }
}
