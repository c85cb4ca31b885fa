namespace Vmm.Ram.Tests;

/// <summary>Impossible block shapes and ranges are refused with messages that say what is wrong.</summary>
public class RamBlockGeometryTests
{
    private const ulong MiB = 1024 * 1024;

    [Theory]
    [InlineData(3 * MiB, null, 0ul)]
    [InlineData(4 * MiB, 5 * MiB, 0ul)]
    [InlineData(4 * MiB, null, MiB)]
    [InlineData(4096ul, null, 0ul)]
    public void HugetlbfsGeometryMustBeWholeHugePages(ulong size, ulong? maxSize, ulong guestBase)
    {
        var e = Assert.Throws<ArgumentException>(() => RamBlock.Create(new RamBlockSpec("huge", guestBase, size, maxSize, RamBackend.Hugetlbfs)));

        Assert.Contains("0x200000", e.Message);
        Assert.Contains("huge", e.Message);
    }

    [Theory]
    [InlineData(RamBackend.Anonymous)]
    [InlineData(RamBackend.Shared)]
    public void SmallPageGeometryMustBeWholePages(RamBackend backend)
    {
        Assert.Throws<ArgumentException>(() => RamBlock.Create(new RamBlockSpec("odd", 0, 1000, Backend: backend)));
        Assert.Throws<ArgumentException>(() => RamBlock.Create(new RamBlockSpec("odd", 0x800, 4096, Backend: backend)));
        Assert.Throws<ArgumentException>(() => RamBlock.Create(new RamBlockSpec("empty", 0, 0, Backend: backend)));
    }

    [Fact]
    public void MaxSizeBelowSizeIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => RamBlock.Create(new RamBlockSpec("shrunk", 0, 1 << 20, 1 << 16)));
        Assert.Contains("smaller than its size", e.Message);
    }

    [Fact]
    public void AnonymousMemoryHasNoAlias()
    {
        var e = Assert.Throws<ArgumentException>(() => RamBlock.Create(new RamBlockSpec("anon", 0, 1 << 16, Alias: true)));
        Assert.Contains("alias", e.Message);
    }

    [Fact]
    public void MemPathIsOnlyForHugetlbfs()
    {
        var e = Assert.Throws<ArgumentException>(() => RamBlock.Create(new RamBlockSpec("shm", 0, 1 << 16, Backend: RamBackend.Shared, MemPath: "/tmp")));
        Assert.Contains("mem-path", e.Message);
    }

    [Fact]
    public void BlankNamesAreRefused()
    {
        Assert.ThrowsAny<ArgumentException>(() => RamBlock.Create(new RamBlockSpec(" ", 0, 1 << 16)));
    }

    [Theory]
    [InlineData(RamBackend.Anonymous)]
    [InlineData(RamBackend.Shared)]
    [InlineData(RamBackend.Hugetlbfs)]
    public void RangeOperationsRefuseUnalignedOrOutOfRangeArguments(RamBackend backend)
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable: true));
        ulong page = block.PageSize;

        Assert.Throws<ArgumentException>(() => block.Discard(page / 2, page));
        Assert.Throws<ArgumentException>(() => block.Discard(0, page / 2));
        Assert.Throws<ArgumentException>(() => block.Discard(0, 0));
        Assert.Throws<ArgumentException>(() => block.Remap(page / 2, page));
        Assert.Throws<ArgumentOutOfRangeException>(() => block.Discard(block.UsedLength, page));
        Assert.Throws<ArgumentOutOfRangeException>(() => block.Remap(block.UsedLength - page, 2 * page));
        Assert.Throws<ArgumentOutOfRangeException>(() => block.HostAddressOf(block.MaxLength));
        Assert.Throws<ArgumentOutOfRangeException>(() => block.OffsetOfHost(block.HostAddress + (nint)block.MaxLength));
    }

    [Fact]
    public void CreateAnonymousIsAFixedPrivateBlock()
    {
        using RamBlock block = RamBlock.CreateAnonymous("pc.ram", 0, 1 << 20);

        Assert.Equal(RamBackend.Anonymous, block.Backend);
        Assert.Equal(1ul << 20, block.UsedLength);
        Assert.Equal(1ul << 20, block.MaxLength);
        Assert.False(block.IsResizable);
        Assert.Null(block.Fd);
        Assert.Equal(0, block.AliasAddress);
    }
}
