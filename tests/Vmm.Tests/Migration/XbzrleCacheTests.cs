using Vmm.Migration.Source;

namespace Vmm.Tests.Migration;

/// <summary>The xbzrle capability's cache of sent pages: bounded by its size, direct-mapped, and never stale.</summary>
public sealed class XbzrleCacheTests
{
    [Theory]
    [InlineData(64ul << 20, 16384)]
    [InlineData((64ul << 20) - 1, 8192)]
    [InlineData(3 * 4096ul, 2)]
    [InlineData(4096ul, 1)]
    public void TheCacheHoldsAPowerOfTwoOfPagesWithinItsSize(ulong size, int slots)
    {
        using var cache = new XbzrleCache(size);
        Assert.Equal(slots, cache.SlotCount);
        Assert.Equal((ulong)slots * 4096, cache.Size);
        Assert.True(cache.Size <= size);
    }

    [Theory]
    [InlineData(0ul)]
    [InlineData(4095ul)]
    [InlineData((1ul << 30) + 1)]
    public void ASizeOutsideTheBoundsIsRefused(ulong size) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new XbzrleCache(size).Dispose());

    [Fact]
    public void APageIsFoundOnlyAfterItWasClaimedAndUntilSomethingTakesItsSlot()
    {
        using var cache = new XbzrleCache(4 * 4096);
        Assert.True(cache.Find(0, 5).IsEmpty);
        cache.Claim(0, 5).Fill(0x55);
        Assert.True(cache.Find(0, 5).ToArray().All(b => b == 0x55));
        Assert.True(cache.Find(0, 6).IsEmpty);
        Assert.True(cache.Find(1, 5).IsEmpty, "another block's page 5 is another page");

        // Four slots: page 9 lands where page 5 was, and evicts it.
        cache.Claim(0, 9).Fill(0x99);
        Assert.True(cache.Find(0, 5).IsEmpty);
        Assert.True(cache.Find(0, 9).ToArray().All(b => b == 0x99));
    }

    [Fact]
    public void AForgottenPageIsGoneAndForgettingAnotherLeavesItsSlotAlone()
    {
        using var cache = new XbzrleCache(4 * 4096);
        cache.Claim(0, 1).Fill(1);
        cache.Forget(0, 5); // same slot, another page: nothing happens to page 1
        Assert.False(cache.Find(0, 1).IsEmpty);
        cache.Forget(0, 1);
        Assert.True(cache.Find(0, 1).IsEmpty);
    }

    [Fact]
    public void ADisposedCacheRefusesToBeUsed()
    {
        var cache = new XbzrleCache(4096);
        cache.Dispose();
        cache.Dispose();
        Assert.Throws<ObjectDisposedException>(() => cache.Claim(0, 0).Length);
    }

    [Fact]
    public void ConsecutivePagesOfABlockTakeDistinctSlots()
    {
        using var cache = new XbzrleCache(1 << 20);
        for (ulong page = 100; page < 100 + 256; page++)
        {
            cache.Claim(2, page)[0] = (byte)page;
        }

        for (ulong page = 100; page < 100 + 256; page++)
        {
            Assert.Equal((byte)page, cache.Find(2, page)[0]);
        }
    }
}
