using System.Diagnostics;
using Vmm.Linux;
using Vmm.Linux.Userfaultfd;

namespace Vmm.Ram.Tests;

/// <summary>
/// Userfaultfd on real RAM blocks: a toucher thread blocks in a fault, the test reads the fault and resolves it.
/// Every test that parks a thread frees it on the way out: disposing the userfaultfd wakes all its waiters.
/// </summary>
public class UserfaultfdTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan BusyPoll = TimeSpan.FromMilliseconds(1);

    public static TheoryData<RamBackend> Backends => Shapes.Backends;

    public static TheoryData<RamBackend> FileBackends => Shapes.FileBackends;

    public static TheoryData<RamBackend> SmallPageBackends => new() { RamBackend.Anonymous, RamBackend.Shared };

    [Fact]
    public void OpenEnablesTheRequiredFeaturesAndWhicheverOptionalOnesExist()
    {
        const UffdFeatures required = UffdFeatures.MissingShmem | UffdFeatures.MissingHugetlbfs;
        const UffdFeatures optional = UffdFeatures.ThreadId | UffdFeatures.MinorShmem | (UffdFeatures)(1ul << 60);

        using Userfaultfd uffd = Userfaultfd.Open(required, optional);

        Assert.Equal(required, uffd.Features & required);
        Assert.Equal(optional & uffd.AvailableFeatures, uffd.Features & optional);
        Assert.Equal(UffdFeatures.None, uffd.Features & (UffdFeatures)(1ul << 60));
        Assert.Equal(UffdFeatures.None, uffd.Features & ~(required | optional));
        Assert.True(uffd.IsNonBlocking);
        Assert.False(uffd.Fd.IsInvalid);
    }

    [Fact]
    public void OpenNamesEveryMissingRequiredFeature()
    {
        const UffdFeatures unknown = (UffdFeatures)(1ul << 50) | (UffdFeatures)(1ul << 51);

        var e = Assert.Throws<UserfaultfdException>(() => Userfaultfd.Open(UffdFeatures.MissingShmem | unknown));

        Assert.Equal(unknown, e.MissingFeatures);
        Assert.Contains("bit 50 (0x4000000000000)", e.Message);
        Assert.Contains("bit 51", e.Message);
        Assert.Contains("lacks required feature(s) bit 50", e.Message);
    }

    [Fact]
    public void ThisKernelOffersWhatPostcopyNeeds()
    {
        // DESIGN §6 lists these as measured on these machines; the migration code relies on them.
        using Userfaultfd uffd = Userfaultfd.Open(UffdFeatures.None);
        const UffdFeatures expected = UffdFeatures.MissingShmem | UffdFeatures.MissingHugetlbfs | UffdFeatures.MinorShmem
            | UffdFeatures.MinorHugetlbfs | UffdFeatures.PagefaultFlagWp | UffdFeatures.ThreadId | UffdFeatures.EventRemove;
        Assert.Equal(expected, uffd.AvailableFeatures & expected);
    }

    [Fact]
    public void ABlockingUserfaultfdRefusesTheFaultReaders()
    {
        using Userfaultfd uffd = Userfaultfd.Open(UffdFeatures.None, nonBlocking: false);

        Assert.False(uffd.IsNonBlocking);
        Assert.Throws<InvalidOperationException>(() => uffd.TryReadFault(out _));
    }

    [Fact]
    public void ReadingWithNothingPendingTimesOut()
    {
        using Userfaultfd uffd = Userfaultfd.Open(UffdFeatures.None);
        var batch = new UserfaultfdEvent[4];

        Assert.False(uffd.TryReadFault(out _));
        var clock = Stopwatch.StartNew();
        Assert.Equal(0, uffd.ReadFaults(batch, TimeSpan.FromMilliseconds(60), TimeSpan.FromMilliseconds(10)));
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(55), $"returned after {clock.Elapsed.TotalMilliseconds} ms");
        Assert.Equal(0, uffd.ReadFaults(batch, TimeSpan.Zero, TimeSpan.Zero));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void AMissingFaultIsReportedAndCopyResolvesIt(RamBackend backend)
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable: false));
        using Userfaultfd uffd = OpenFor(backend, UffdRegisterModes.Missing);
        UffdRangeIoctls ioctls = uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);
        Assert.True(ioctls.HasFlag(UffdRangeIoctls.Copy | UffdRangeIoctls.Wake), ioctls.ToString());
        ulong page = block.PageSize;
        using var source = new NativeBuffer(page, 0x5C);
        BitConverter.TryWriteBytes(source.Span, 0x1122334455667788ul);

        var toucher = Toucher.Read(block.HostAddressOf(page) + 24);
        UserfaultfdEvent fault = WaitForFault(uffd);

        Assert.Equal(UserfaultfdEventKind.Pagefault, fault.Kind);
        Assert.Equal(block.HostAddressOf(page), fault.Address);
        Assert.Equal(UserfaultfdFaultFlags.None, fault.Flags);
        Assert.Equal((uint)toucher.ThreadId, fault.ThreadId);
        Assert.False(toucher.IsDone);

        PlacementResult placed = uffd.Copy(block.HostAddressOf(page), source.Address, page);
        Assert.Equal(new PlacementResult(PlacementStatus.Placed, page), placed);
        Assert.Equal(0x5C5C5C5C5C5C5C5Cul, toucher.Result(Patience));
        Assert.Equal(0x1122334455667788ul, Shapes.ReadUInt64(block, page));

        PlacementResult again = uffd.Copy(block.HostAddressOf(page), source.Address, page);
        Assert.Equal(PlacementStatus.AlreadyPresent, again.Status);
        Assert.Equal(Errno.EEXIST, again.Errno);
    }

    [Fact]
    public void AWriteFaultCarriesTheWriteFlag()
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Anonymous, resizable: false));
        using Userfaultfd uffd = OpenFor(RamBackend.Anonymous, UffdRegisterModes.Missing);
        uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);

        var toucher = Toucher.Write(block.HostAddressOf(3 * block.PageSize), 42);
        UserfaultfdEvent fault = WaitForFault(uffd);

        Assert.Equal(block.HostAddressOf(3 * block.PageSize), fault.Address);
        Assert.Equal(UserfaultfdFaultFlags.Write, fault.Flags);
        Assert.True(uffd.ZeroPage(fault.Address, block.PageSize).IsPlaced);
        toucher.Result(Patience);
        Assert.Equal(42ul, Shapes.ReadUInt64(block, 3 * block.PageSize));
    }

    [Theory]
    [MemberData(nameof(SmallPageBackends))]
    public void ZeroPageResolvesAMissingFault(RamBackend backend)
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable: false));
        using Userfaultfd uffd = OpenFor(backend, UffdRegisterModes.Missing);
        UffdRangeIoctls ioctls = uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);
        Assert.True(ioctls.HasFlag(UffdRangeIoctls.ZeroPage), ioctls.ToString());

        var toucher = Toucher.Read(block.HostAddressOf(5 * block.PageSize) + 100);

        // No busy phase: this exercises the poll(2) path of ReadFaults.
        UserfaultfdEvent fault = WaitForFault(uffd, busyPoll: TimeSpan.Zero);
        Assert.Equal(block.HostAddressOf(5 * block.PageSize), fault.Address);
        Assert.Equal(new PlacementResult(PlacementStatus.Placed, block.PageSize), uffd.ZeroPage(fault.Address, block.PageSize));
        Assert.Equal(0ul, toucher.Result(Patience));
        Assert.Equal(PlacementStatus.AlreadyPresent, uffd.ZeroPage(fault.Address, block.PageSize).Status);
    }

    [Fact]
    public void HugetlbfsHasNoZeroPageSoAZeroedHugePageIsCopied()
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Hugetlbfs, resizable: false));
        using Userfaultfd uffd = OpenFor(RamBackend.Hugetlbfs, UffdRegisterModes.Missing);
        UffdRangeIoctls ioctls = uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);
        Assert.False(ioctls.HasFlag(UffdRangeIoctls.ZeroPage), ioctls.ToString());
        using var zeros = new NativeBuffer(HugePages.PageSize);

        var toucher = Toucher.Read(block.HostAddressOf(HugePages.PageSize) + 0x12345);
        UserfaultfdEvent fault = WaitForFault(uffd);
        Assert.Equal(block.HostAddressOf(HugePages.PageSize), fault.Address);

        // The kernel refuses ZEROPAGE on hugetlb with EINVAL, which the typed result reports as "not registered".
        PlacementResult refused = uffd.ZeroPage(fault.Address, HugePages.PageSize);
        Assert.Equal(PlacementStatus.NotRegistered, refused.Status);
        Assert.Equal(Errno.EINVAL, refused.Errno);
        Assert.False(toucher.IsDone);

        Assert.Equal(new PlacementResult(PlacementStatus.Placed, HugePages.PageSize), uffd.Copy(fault.Address, zeros.Address, HugePages.PageSize));
        Assert.Equal(0ul, toucher.Result(Patience));
    }

    [Fact]
    public void KernelModeAccessesFaultIntoUserfaultfdToo()
    {
        // KVM reads guest memory from the kernel; a write(2) from guest RAM is the same kind of access.
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Anonymous, resizable: false));
        using Userfaultfd uffd = OpenFor(RamBackend.Anonymous, UffdRegisterModes.Missing);
        uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);
        using FileDescriptor sink = Memfd.Create("uffd-kernel-access", 0);
        nint page = block.HostAddressOf(7 * block.PageSize);

        var toucher = Toucher.Run(() =>
        {
            unsafe
            {
                return (ulong)Unistd.Write(sink.Value, (byte*)page, (nuint)block.PageSize);
            }
        });
        UserfaultfdEvent fault = WaitForFault(uffd);

        Assert.Equal(page, fault.Address);
        Assert.True(uffd.ZeroPage(page, block.PageSize).IsPlaced);
        Assert.Equal(block.PageSize, toucher.Result(Patience));
    }

    [Fact]
    public void SeveralFaultsAreReadInBatches()
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Anonymous, resizable: false));
        using Userfaultfd uffd = OpenFor(RamBackend.Anonymous, UffdRegisterModes.Missing);
        uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);
        ulong[] pages = [1, 4, 9];
        Toucher[] touchers = [.. pages.Select(p => Toucher.Read(block.HostAddressOf(p * block.PageSize)))];

        var seen = new HashSet<nint>();
        var batch = new UserfaultfdEvent[8];
        var clock = Stopwatch.StartNew();
        while (seen.Count < pages.Length && clock.Elapsed < Patience)
        {
            int count = uffd.ReadFaults(batch, TimeSpan.FromMilliseconds(100), BusyPoll);
            foreach (UserfaultfdEvent fault in batch.AsSpan(0, count))
            {
                Assert.Equal(UserfaultfdEventKind.Pagefault, fault.Kind);
                seen.Add(fault.Address);
            }
        }

        Assert.Equal(pages.Select(p => block.HostAddressOf(p * block.PageSize)).Order(), seen.Order());
        foreach (nint address in seen)
        {
            Assert.True(uffd.ZeroPage(address, block.PageSize).IsPlaced);
        }

        Assert.All(touchers, t => Assert.Equal(0ul, t.Result(Patience)));
    }

    [Fact]
    public void ACopyThatRunsIntoAPresentPageIsPartial()
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Anonymous, resizable: false));
        using Userfaultfd uffd = OpenFor(RamBackend.Anonymous, UffdRegisterModes.Missing);
        uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);
        ulong page = block.PageSize;
        using var source = new NativeBuffer(3 * page, 0x44);
        Assert.True(uffd.ZeroPage(block.HostAddressOf(2 * page), page).IsPlaced);

        // Pages 1 and 2: the kernel places page 1, stops at the present page 2 and reports EAGAIN with one page done.
        PlacementResult result = uffd.Copy(block.HostAddressOf(page), source.Address, 2 * page);

        Assert.Equal(new PlacementResult(PlacementStatus.Partial, page, Errno.EAGAIN), result);
        Assert.Equal(0x4444444444444444ul, Shapes.ReadUInt64(block, page));
        Assert.Equal(0ul, Shapes.ReadUInt64(block, 2 * page));
        Assert.Equal(PlacementStatus.AlreadyPresent, uffd.Copy(block.HostAddressOf(2 * page), source.Address, page).Status);
    }

    [Fact]
    public void TheFaultPathDoesNotAllocate()
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Anonymous, resizable: false));
        using Userfaultfd uffd = OpenFor(RamBackend.Anonymous, UffdRegisterModes.Missing);
        uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);
        using var source = new NativeBuffer(block.PageSize, 9);
        var batch = new UserfaultfdEvent[16];

        // The first round warms up (JIT, P/Invoke stubs); the second is measured.
        for (ulong round = 0; round < 2; round++)
        {
            var toucher = Toucher.Read(block.HostAddressOf(round * block.PageSize));
            long before = GC.GetAllocatedBytesForCurrentThread();
            int count = uffd.ReadFaults(batch, Patience, BusyPoll);
            PlacementResult placed = uffd.Copy(batch[0].Address, source.Address, block.PageSize);
            PlacementResult duplicate = uffd.Copy(batch[0].Address, source.Address, block.PageSize);
            bool none = uffd.TryReadFault(out _);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

            Assert.Equal(1, count);
            Assert.True(placed.IsPlaced);
            Assert.Equal(PlacementStatus.AlreadyPresent, duplicate.Status);
            Assert.False(none);
            Assert.Equal(0x0909090909090909ul, toucher.Result(Patience));
            if (round == 1)
            {
                Assert.Equal(0, allocated);
            }
        }
    }

    [Fact]
    public void PlacingOutsideAnyRegistrationIsNotRegisteredAndWakeStillWorks()
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Anonymous, resizable: false));
        using Userfaultfd uffd = OpenFor(RamBackend.Anonymous, UffdRegisterModes.Missing);
        using var source = new NativeBuffer(block.PageSize, 1);
        uffd.Register(block.HostAddress, block.PageSize, UffdRegisterModes.Missing);

        PlacementResult result = uffd.Copy(block.HostAddressOf(block.PageSize), source.Address, block.PageSize);

        Assert.Equal(PlacementStatus.NotRegistered, result.Status);
        Assert.Equal(Errno.ENOENT, result.Errno);
        uffd.Wake(block.HostAddressOf(block.PageSize), block.PageSize);
        Assert.Throws<ArgumentException>(() => uffd.Copy(block.HostAddress + 1, source.Address, block.PageSize));
    }

    [Fact]
    public void UnregisterWakesABlockedToucherWhichThenFaultsNormally()
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Anonymous, resizable: false));
        using Userfaultfd uffd = OpenFor(RamBackend.Anonymous, UffdRegisterModes.Missing);
        uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);

        var toucher = Toucher.Read(block.HostAddressOf(0));
        WaitForFault(uffd);
        uffd.Unregister(block.HostAddress, block.UsedLength);

        Assert.Equal(0ul, toucher.Result(Patience));
    }

    [Theory]
    [MemberData(nameof(FileBackends))]
    public void AMinorFaultIsResolvedByContinueWithWhatTheAliasWrote(RamBackend backend)
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable: false));
        using Userfaultfd uffd = OpenFor(backend, UffdRegisterModes.Minor);
        ulong page = block.PageSize;

        // The page cache is filled through the alias; the primary mapping has never touched the page.
        BitConverter.TryWriteBytes(block.GetAliasSpan(page + 64, 8), 0xC0FFEEul);
        UffdRangeIoctls ioctls = uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Minor);
        Assert.True(ioctls.HasFlag(UffdRangeIoctls.Continue), ioctls.ToString());

        var toucher = Toucher.Read(block.HostAddressOf(page) + 64);
        UserfaultfdEvent fault = WaitForFault(uffd);

        Assert.Equal(block.HostAddressOf(page), fault.Address);
        Assert.True(fault.Flags.HasFlag(UserfaultfdFaultFlags.Minor), fault.Flags.ToString());
        Assert.False(toucher.IsDone);
        Assert.Equal(new PlacementResult(PlacementStatus.Placed, page), uffd.Continue(fault.Address, page));
        Assert.Equal(0xC0FFEEul, toucher.Result(Patience));
        Assert.Equal(PlacementStatus.AlreadyPresent, uffd.Continue(fault.Address, page).Status);
    }

    [Theory]
    [MemberData(nameof(FileBackends))]
    public void UnmappingFromThePrimaryKeepsTheContentAndMakesTheNextTouchAMinorFault(RamBackend backend)
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable: false));
        using Userfaultfd uffd = OpenFor(backend, UffdRegisterModes.Minor);
        ulong page = block.PageSize;

        // Mapped and written through the primary mapping, as precopy does without minor faults.
        BitConverter.TryWriteBytes(block.GetSpan(page + 64, 8), 0xFEEDul);
        block.UnmapFromPrimary(page, page);
        Assert.Equal(0xFEEDul, BitConverter.ToUInt64(block.GetAliasSpan(page + 64, 8)));
        uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Minor);

        var toucher = Toucher.Read(block.HostAddressOf(page) + 64);
        UserfaultfdEvent fault = WaitForFault(uffd);
        Assert.True(fault.Flags.HasFlag(UserfaultfdFaultFlags.Minor), fault.Flags.ToString());
        Assert.False(toucher.IsDone);

        // What a refetch does: new content through the alias, then CONTINUE.
        BitConverter.TryWriteBytes(block.GetAliasSpan(page + 64, 8), 0xBEEFul);
        Assert.Equal(PlacementStatus.Placed, uffd.Continue(fault.Address, page).Status);
        Assert.Equal(0xBEEFul, toucher.Result(Patience));
    }

    [Fact]
    public void UnmappingFromThePrimaryIsRefusedOnAnonymousMemory()
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Anonymous, resizable: false));
        Assert.Throws<InvalidOperationException>(() => block.UnmapFromPrimary(0, block.PageSize));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void TheRegistryAnnouncesARangeBeforeARemapOrShrinkReplacesIt(RamBackend backend)
    {
        using var registry = new RamBlockRegistry();
        RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable: true));
        registry.Add(block);
        ulong page = block.PageSize;
        registry.Resize(block, block.MaxLength);
        BitConverter.TryWriteBytes(block.GetSpan(page, 8), 0x1234ul);
        ulong seenAtRemap = 0;
        var announced = new List<(ulong Offset, ulong Length)>();
        registry.RangeReplacing += (b, offset, length) =>
        {
            Assert.Same(block, b);
            announced.Add((offset, length));

            // Before the replacement: the old content is still there.
            seenAtRemap = announced.Count == 1 ? BitConverter.ToUInt64(block.GetSpan(page, 8)) : seenAtRemap;
        };

        registry.Remap(block, page, page);
        ulong used = block.MaxLength / 2 / page * page;
        registry.Resize(block, used);
        registry.Resize(block, block.MaxLength);

        Assert.Equal([(page, page), (used, block.MaxLength - used)], announced);
        Assert.Equal(0x1234ul, seenAtRemap);
        Assert.Equal(0ul, BitConverter.ToUInt64(block.GetSpan(page, 8)));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void AWriteToAWriteProtectedPageFaultsUntilUnprotected(RamBackend backend)
    {
        UffdFeatures needed = Userfaultfd.RequiredFeatures(backend, UffdRegisterModes.WriteProtect);
        using (Userfaultfd probe = Userfaultfd.Open(UffdFeatures.None))
        {
            if ((probe.AvailableFeatures & needed) != needed)
            {
                // Not a skip: on a kernel without WP the contract is that Open names what is missing.
                var e = Assert.Throws<UserfaultfdException>(() => Userfaultfd.Open(needed));
                Assert.NotEqual(UffdFeatures.None, e.MissingFeatures);
                return;
            }
        }

        using RamBlock block = RamBlock.Create(Shapes.Spec(backend, resizable: false));
        using Userfaultfd uffd = OpenFor(backend, UffdRegisterModes.WriteProtect);
        ulong page = block.PageSize;
        block.Write(page, BitConverter.GetBytes(7ul));
        UffdRangeIoctls ioctls = uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.WriteProtect);
        Assert.True(ioctls.HasFlag(UffdRangeIoctls.WriteProtect), ioctls.ToString());
        uffd.WriteProtect(block.HostAddressOf(page), page, protect: true);

        // Reads of a write-protected page do not fault.
        Assert.Equal(7ul, Shapes.ReadUInt64(block, page));
        var toucher = Toucher.Write(block.HostAddressOf(page), 8);
        UserfaultfdEvent fault = WaitForFault(uffd);

        Assert.Equal(block.HostAddressOf(page), fault.Address);
        Assert.Equal(UserfaultfdFaultFlags.WriteProtect | UserfaultfdFaultFlags.Write, fault.Flags);
        Assert.False(toucher.IsDone);
        uffd.WriteProtect(block.HostAddressOf(page), page, protect: false);
        toucher.Result(Patience);
        Assert.Equal(8ul, Shapes.ReadUInt64(block, page));
    }

    [Fact]
    public void DiscardingARegisteredRangeReportsARemoveEventAndWaitsForItToBeRead()
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Anonymous, resizable: false));
        using Userfaultfd uffd = Userfaultfd.Open(UffdFeatures.EventRemove);
        uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);
        ulong page = block.PageSize;

        var discarder = Toucher.Run(() =>
        {
            block.Discard(2 * page, 3 * page);
            return 1;
        });
        UserfaultfdEvent removed = WaitForEvent(uffd, TimeSpan.FromMilliseconds(1));

        Assert.Equal(UserfaultfdEventKind.Remove, removed.Kind);
        Assert.Equal(block.HostAddressOf(2 * page), removed.RangeStart);
        Assert.Equal(block.HostAddressOf(5 * page), removed.RangeEnd);
        Assert.Equal(1ul, discarder.Result(Patience));
    }

    [Fact]
    public void RequiredFeaturesFollowTheBackend()
    {
        Assert.Equal(UffdFeatures.None, Userfaultfd.RequiredFeatures(RamBackend.Anonymous, UffdRegisterModes.Missing));
        Assert.Equal(UffdFeatures.MissingShmem | UffdFeatures.MinorShmem, Userfaultfd.RequiredFeatures(RamBackend.Shared, UffdRegisterModes.Missing | UffdRegisterModes.Minor));
        Assert.Equal(UffdFeatures.MinorHugetlbfs, Userfaultfd.RequiredFeatures(RamBackend.Hugetlbfs, UffdRegisterModes.Minor));
        Assert.Throws<ArgumentException>(() => Userfaultfd.RequiredFeatures(RamBackend.Anonymous, UffdRegisterModes.Minor));
    }

    private static Userfaultfd OpenFor(RamBackend backend, UffdRegisterModes modes) =>
        Userfaultfd.Open(Userfaultfd.RequiredFeatures(backend, modes) | UffdFeatures.ThreadId);

    private static UserfaultfdEvent WaitForFault(Userfaultfd uffd, TimeSpan? busyPoll = null)
    {
        UserfaultfdEvent fault = WaitForEvent(uffd, busyPoll ?? BusyPoll);
        Assert.Equal(UserfaultfdEventKind.Pagefault, fault.Kind);
        return fault;
    }

    private static UserfaultfdEvent WaitForEvent(Userfaultfd uffd, TimeSpan busyPoll)
    {
        Span<UserfaultfdEvent> batch = stackalloc UserfaultfdEvent[1];
        int count = uffd.ReadFaults(batch, Patience, busyPoll);
        Assert.True(count == 1, $"no userfaultfd event within {Patience.TotalSeconds} s");
        return batch[0];
    }
}
