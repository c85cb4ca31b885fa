using Vmm.Linux;

namespace Vmm.Ram.Tests;

/// <summary>Create, read/write, discard, remap and resize on every backend, fixed and resizable, on the real kernel.</summary>
public class RamBlockBackendTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    public static TheoryData<RamBackend, bool> All => Shapes.All;

    public static TheoryData<RamBackend> Backends => Shapes.Backends;

    [Theory]
    [MemberData(nameof(All))]
    public void CreatedBlockHasTheGeometryOfItsBackend(RamBackend backend, bool resizable)
    {
        RamBlockSpec spec = Shapes.Spec(backend, resizable);
        using RamBlock block = RamBlock.Create(spec);

        Assert.Equal(backend, block.Backend);
        Assert.Equal(Shapes.PageSizeOf(backend), block.PageSize);
        Assert.Equal(spec.Size, block.UsedLength);
        Assert.Equal(spec.MaxSize ?? spec.Size, block.MaxLength);
        Assert.Equal(resizable, block.IsResizable);
        Assert.Equal(spec.Size / block.PageSize, block.PageCount);
        Assert.Equal(spec.GuestBase + spec.Size, block.GuestEnd);
        Assert.Equal(backend == RamBackend.Anonymous, block.Fd is null);
        Assert.Equal(backend != RamBackend.Anonymous, block.AliasAddress != 0);
        Assert.Equal(block.MaxLength / DirtyBitmap.PageSize, block.DirtyBitmap.PageCount);
        Assert.Equal(0ul, (ulong)block.HostAddress % block.PageSize);

        ulong last = block.UsedLength - 1;
        Assert.Equal(block.HostAddress + (nint)last, block.HostAddressOf(last));
        Assert.Equal(last, block.OffsetOfHost(block.HostAddressOf(last)));
        Assert.True(block.ContainsGuestAddress(spec.GuestBase + last));
        Assert.False(block.ContainsGuestAddress(spec.GuestBase + spec.Size));
        Assert.False(block.TryGetOffsetOfHost(block.HostAddress - 1, out _));
        Assert.False(block.TryGetOffsetOfHost(block.HostAddress + (nint)block.MaxLength, out _));

        if (block.Fd is not null)
        {
            // File blocks are sized to the whole reservation up front, so growing never touches the file.
            Assert.Equal((long)block.MaxLength, Stat.Fstat(block.Fd).Size);
        }

        // Lazily allocated: nothing backs the block before the first touch.
        Assert.Equal(0ul, Backing.Bytes(block, 0, block.MaxLength));
    }

    [Theory]
    [MemberData(nameof(All))]
    public void WrittenBytesReadBackAndShowThroughTheAlias(RamBackend backend, bool resizable)
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable));
        Shapes.FillMarkers(block);

        for (ulong page = 0; page < block.PageCount; page++)
        {
            ulong offset = page * block.PageSize;
            Assert.Equal(Shapes.Marker(page), Shapes.ReadUInt64(block, offset));
            Assert.Equal(Shapes.Marker(page), Shapes.ReadUInt64(block, offset + block.PageSize - 8));
            if (block.AliasAddress != 0)
            {
                Assert.Equal(Shapes.Marker(page), BitConverter.ToUInt64(block.GetAliasSpan(offset, 8)));
            }
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => block.GetSpan(block.UsedLength - 4, 8));
    }

    [Theory]
    [MemberData(nameof(All))]
    public void DiscardReadsZerosAndGivesTheMemoryBack(RamBackend backend, bool resizable)
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable));
        Shapes.FillMarkers(block);
        ulong page = block.PageSize;
        ulong before = Backing.Bytes(block, 0, block.UsedLength);
        Assert.Equal(block.UsedLength, before);

        ulong discarded = Math.Min(2 * page, block.UsedLength - page);

        block.Discard(page, discarded);

        // Measure before reading: reading a hole faults memory back in (the zero page, or a fresh shmem/huge page).
        Assert.Equal(before - discarded, Backing.Bytes(block, 0, block.UsedLength));
        Assert.True(Shapes.IsZero(block, page, discarded));
        Assert.Equal(Shapes.Marker(0), Shapes.ReadUInt64(block, 0));
        ulong after = page + discarded;
        if (after < block.UsedLength)
        {
            Assert.Equal(Shapes.Marker(after / page), Shapes.ReadUInt64(block, after));
        }

        if (block.AliasAddress != 0)
        {
            Assert.Equal(0ul, BitConverter.ToUInt64(block.GetAliasSpan(page, 8)));
        }
    }

    [Fact]
    public void DiscardingHugePagesReturnsThemToThePool()
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Hugetlbfs, resizable: false));
        Shapes.FillMarkers(block);
        ulong freeWhileTouched = HugePages.FreePages;

        block.Discard(0, block.UsedLength);

        Assert.Equal(freeWhileTouched + block.PageCount, HugePages.FreePages);
    }

    [Theory]
    [MemberData(nameof(All))]
    public void RemapReplacesTheRangeWithZerosAndDropsItsUserfaultfdRegistration(RamBackend backend, bool resizable)
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable));
        Shapes.FillMarkers(block);
        using Userfaultfd uffd = Userfaultfd.Open(Userfaultfd.RequiredFeatures(backend, UffdRegisterModes.Missing));
        uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);
        ulong page = block.PageSize;
        using var source = new NativeBuffer(page, 0x77);

        block.Remap(page, page);

        // The remapped page is no longer registered: placing there is refused with ENOENT …
        PlacementResult remapped = uffd.Copy(block.HostAddressOf(page), source.Address, page);
        Assert.Equal(PlacementStatus.NotRegistered, remapped.Status);
        Assert.Equal(Errno.ENOENT, remapped.Errno);

        // … while the rest of the block still is (its pages are present, hence EEXIST rather than ENOENT).
        Assert.Equal(PlacementStatus.AlreadyPresent, uffd.Copy(block.HostAddressOf(0), source.Address, page).Status);
        bool hasThirdPage = block.PageCount > 2;
        if (hasThirdPage)
        {
            Assert.Equal(PlacementStatus.AlreadyPresent, uffd.Copy(block.HostAddressOf(2 * page), source.Address, page).Status);
        }

        // Touching it does not fault into userfaultfd (a registered range would block here) and reads fresh zeros.
        Assert.Equal(0ul, Toucher.Read(block.HostAddressOf(page)).Result(Patience));
        Assert.True(Shapes.IsZero(block, page, page));
        Assert.Equal(Shapes.Marker(0), Shapes.ReadUInt64(block, 0));
        if (hasThirdPage)
        {
            Assert.Equal(Shapes.Marker(2), Shapes.ReadUInt64(block, 2 * page));
        }

        if (block.AliasAddress != 0)
        {
            // Same file underneath: the alias sees the fresh page too.
            Assert.Equal(0ul, BitConverter.ToUInt64(block.GetAliasSpan(page, 8)));
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void ResizeGrowsAndShrinksWithinTheReservationAndTellsTheRegistry(RamBackend backend)
    {
        using var registry = new RamBlockRegistry();
        RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable: true));
        registry.Add(block);
        var resized = new List<(RamBlock Block, ulong OldUsed, ulong NewUsed)>();
        registry.BlockResized += (b, old) => resized.Add((b, old, b.UsedLength));
        ulong size = block.UsedLength;
        nint host = block.HostAddress;

        registry.Resize(block, block.MaxLength);
        Assert.Equal(block.MaxLength, block.UsedLength);
        Assert.Equal(host, block.HostAddress);
        Assert.Equal((block, size, block.MaxLength), Assert.Single(resized));
        Assert.Equal(block, registry.FindByGuestAddress(block.GuestBase + block.MaxLength - 1));
        Shapes.FillMarkers(block);
        Assert.Equal(Shapes.Marker(block.PageCount - 1), Shapes.ReadUInt64(block, block.MaxLength - block.PageSize));
        ulong tailBacking = Backing.Bytes(block, size, block.MaxLength - size);
        Assert.NotEqual(0ul, tailBacking);

        registry.Resize(block, size);
        Assert.Equal(size, block.UsedLength);
        Assert.Equal((block, block.MaxLength, size), resized[1]);
        Assert.Null(registry.FindByGuestAddress(block.GuestBase + size));
        Assert.Throws<ArgumentOutOfRangeException>(() => block.GetSpan(size, 8));

        // The shrunk tail went back to the host …
        ulong expectedAfterShrink = backend == RamBackend.Anonymous ? 0 : size;
        Assert.Equal(expectedAfterShrink, Backing.Bytes(block, size, block.MaxLength - size));
        Assert.Equal(Shapes.Marker(0), Shapes.ReadUInt64(block, 0));

        // … and reads as zeros once exposed again.
        registry.Resize(block, block.MaxLength);
        Assert.True(Shapes.IsZero(block, size, block.MaxLength - size));
        Assert.Equal(Shapes.Marker(0), Shapes.ReadUInt64(block, 0));
        Assert.Equal(3, resized.Count);

        // No change, no event.
        registry.Resize(block, block.MaxLength);
        Assert.Equal(3, resized.Count);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void ShrinkingDropsTheTailsUserfaultfdRegistration(RamBackend backend)
    {
        // Seed 000: during postcopy a shrunk block keeps receiving pages for its old tail; placing them must fail
        // with ENOENT (and be dropped), not resurrect memory the guest no longer has.
        using RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable: true));
        ulong size = block.UsedLength;
        block.Resize(block.MaxLength);
        using Userfaultfd uffd = Userfaultfd.Open(Userfaultfd.RequiredFeatures(backend, UffdRegisterModes.Missing));
        uffd.Register(block.HostAddress, block.MaxLength, UffdRegisterModes.Missing);
        using var source = new NativeBuffer(block.PageSize, 0x33);

        block.Resize(size);

        PlacementResult tail = uffd.Copy(block.HostAddressOf(size), source.Address, block.PageSize);
        Assert.Equal(PlacementStatus.NotRegistered, tail.Status);
        Assert.Equal(Errno.ENOENT, tail.Errno);
        Assert.Equal(PlacementStatus.Placed, uffd.Copy(block.HostAddressOf(0), source.Address, block.PageSize).Status);

        // Grown again, the tail is plain fresh memory: touching it reads zeros instead of waiting for a page.
        block.Resize(block.MaxLength);
        Assert.Equal(0ul, Toucher.Read(block.HostAddressOf(block.MaxLength - 8)).Result(Patience));
        Assert.Equal(0x3333333333333333ul, Shapes.ReadUInt64(block, 0));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void ResizeRefusesLengthsOutsideTheReservationOrOffThePageGrid(RamBackend backend)
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable: true));
        ulong size = block.UsedLength;

        Assert.Throws<ArgumentOutOfRangeException>(() => block.Resize(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => block.Resize(block.MaxLength + block.PageSize));
        Assert.Throws<ArgumentOutOfRangeException>(() => block.Resize(size + 4096 / 2));
        if (backend == RamBackend.Hugetlbfs)
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => block.Resize(size + 4096));
        }

        Assert.Equal(size, block.UsedLength);
    }

    [Fact]
    public void FixedBlocksCannotBeResized()
    {
        using var registry = new RamBlockRegistry();
        RamBlock block = RamBlock.CreateAnonymous("fixed", 0, 1 << 16);
        registry.Add(block);

        Assert.Throws<InvalidOperationException>(() => registry.Resize(block, 1 << 15));
        Assert.Equal(1ul << 16, block.UsedLength);
    }

    [Fact]
    public void RegistryRefusesToResizeABlockItDoesNotOwn()
    {
        using var registry = new RamBlockRegistry();
        using RamBlock stranger = RamBlock.Create(Shapes.Spec(RamBackend.Anonymous, resizable: true));

        Assert.Throws<InvalidOperationException>(() => registry.Resize(stranger, stranger.MaxLength));
    }
}
