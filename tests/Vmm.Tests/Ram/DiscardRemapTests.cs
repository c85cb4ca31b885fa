using System.Runtime.InteropServices;
using Vmm.Linux;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Ram;

/// <summary>
/// Discard and remap through <see cref="Vmm.Machine.VirtualMachine"/> under a running dirty guest: the host and the
/// guest read zeros afterwards, discard gives the memory back to the host, remap drops a userfaultfd registration.
/// </summary>
/// <remarks>
/// How "the guest reads zeros" is seen: the dirty guest increments the first byte of every page, so a page that
/// read v before the operation and 0 after it ends up exactly v behind its neighbours. Adding v back to the pages of
/// the range must give a memory that passes the classic consistency check (DESIGN §7); a guest that still saw the
/// old bytes (or anything but zeros) would leave those pages off by v.
/// </remarks>
[Collection(RamCollection.Name)]
public class DiscardRemapTests
{
    private const ulong Memory = 16 * RamCollection.MiB;
    private const ulong HighMemory = RamCollection.MiB;
    private const ulong RangeOffset = 4 * RamCollection.MiB;
    private const ulong RangeLength = 2 * RamCollection.MiB; // one huge page, 512 base pages

    [Theory]
    [InlineData(RamBackend.Anonymous)]
    [InlineData(RamBackend.Shared)]
    [InlineData(RamBackend.Hugetlbfs)]
    public void DiscardedRangeReadsZerosForHostAndGuestAndItsMemoryIsReleased(RamBackend backend)
    {
        using RamMachine m = RamMachine.Create("dirty", backend, Memory);
        RamBlock block = m.PcRam;
        m.Machine.Start();
        byte[] before = StopWithNonZeroRange(m, block);

        // Everything in the range is backed now: the guest has touched every page of it.
        Assert.Equal(RangeLength / (ulong)Environment.SystemPageSize, Resident(block));
        long fileBytes = backend == RamBackend.Anonymous ? 0 : FileBytes(block);
        ulong freeHugePages = backend == RamBackend.Hugetlbfs ? HugePages.FreePages : 0;

        m.Machine.DiscardRam(block.Name, RangeOffset, RangeLength);

        // Measured before anything reads the range again (a read would fault memory back in).
        Assert.Equal(0ul, Resident(block));
        if (backend != RamBackend.Anonymous)
        {
            Assert.Equal(fileBytes - (long)RangeLength, FileBytes(block));
        }

        if (backend == RamBackend.Hugetlbfs)
        {
            Assert.Equal(freeHugePages + (RangeLength / HugePages.PageSize), HugePages.FreePages);
        }

        Assert.True(RamMachine.IsZero(block, RangeOffset, RangeLength), "the host does not read zeros in the discarded range");
        if (block.AliasAddress != 0)
        {
            Assert.False(block.GetAliasSpan(RangeOffset, (int)RangeLength).ContainsAnyExcept((byte)0), "the alias mapping still shows old bytes");
        }

        AssertOnlyRangeChanged(block, before);
        AssertRangeMarkedDirty(block);

        // The guest carries on: the range reads zeros to it too.
        m.Machine.Continue();
        m.WaitForMorePasses(3, "passes after the discard");
        m.Machine.Stop();
        AssertGuestSawZerosInRange(block, before);
    }

    [Theory]
    [InlineData(RamBackend.Anonymous)]
    [InlineData(RamBackend.Shared)]
    [InlineData(RamBackend.Hugetlbfs)]
    public unsafe void RemappedRangeIsFreshZerosAndLosesItsUserfaultfdRegistration(RamBackend backend)
    {
        using RamMachine m = RamMachine.Create("dirty", backend, Memory);
        RamBlock block = m.PcRam;
        m.Machine.Start();
        byte[] before = StopWithNonZeroRange(m, block);

        // Registered before the remap: the range and the pages after it (all present, so the guest never faults).
        using Userfaultfd uffd = Userfaultfd.Open(Userfaultfd.RequiredFeatures(backend, UffdRegisterModes.Missing));
        uffd.Register(block.HostAddressOf(RangeOffset), 2 * RangeLength, UffdRegisterModes.Missing);
        ulong page = block.PageSize;
        nint source = (nint)NativeMemory.AlignedAlloc((nuint)page, 4096);
        try
        {
            new Span<byte>((void*)source, (int)page).Fill(0x77);

            m.Machine.RemapRam(block.Name, RangeOffset, RangeLength);

            // Placing into the remapped range: the registration is gone (ENOENT), for every page of it.
            foreach (ulong offset in new[] { RangeOffset, RangeOffset + RangeLength - page })
            {
                PlacementResult copy = uffd.Copy(block.HostAddressOf(offset), source, page);
                Assert.Equal(PlacementStatus.NotRegistered, copy.Status);
                Assert.Equal(Errno.ENOENT, copy.Errno);
                if (backend != RamBackend.Hugetlbfs)
                {
                    Assert.Equal(PlacementStatus.NotRegistered, uffd.ZeroPage(block.HostAddressOf(offset), page).Status);
                }
            }

            // Right after it the registration stands, and the guest's page there is kept: already present.
            Assert.Equal(PlacementStatus.AlreadyPresent, uffd.Copy(block.HostAddressOf(RangeOffset + RangeLength), source, page).Status);
        }
        finally
        {
            NativeMemory.AlignedFree((void*)source);
        }

        Assert.True(RamMachine.IsZero(block, RangeOffset, RangeLength), "the remapped range does not read zeros");
        if (block.AliasAddress != 0)
        {
            Assert.False(block.GetAliasSpan(RangeOffset, (int)RangeLength).ContainsAnyExcept((byte)0), "the alias mapping still shows old bytes");
        }

        AssertOnlyRangeChanged(block, before);
        AssertRangeMarkedDirty(block);

        // The guest runs over the remapped pages (missing again for anonymous memory) without faulting into the
        // userfaultfd that no longer covers them — were it still registered, the vCPU would block and no pass end.
        m.Machine.Continue();
        m.WaitForMorePasses(3, "passes after the remap (a vCPU stuck in a userfaultfd fault makes none)");
        m.Machine.Stop();
        AssertGuestSawZerosInRange(block, before);
    }

    /// <summary>Waits for a few passes and stops the guest where no page of the range holds 0 (so a reset shows).</summary>
    private static byte[] StopWithNonZeroRange(RamMachine m, RamBlock block)
    {
        m.WaitForSerial(text => text.Count(c => c == 'B') >= 3, "three passes of the dirty guest");
        for (int attempt = 0; ; attempt++)
        {
            m.Machine.Stop();
            byte[] firsts = RamMachine.FirstBytes(block, HighMemory, Memory - HighMemory);
            Assert.Null(DirtyConsistency.Check(firsts));
            if (!RangeOf(firsts).Contains((byte)0))
            {
                return firsts;
            }

            Assert.True(attempt < 20, "the range kept holding zero first bytes");
            m.Machine.Continue();
            m.WaitForMorePasses(1, "one more pass");
        }
    }

    private static ReadOnlySpan<byte> RangeOf(byte[] firstBytesFromHighMemory) =>
        firstBytesFromHighMemory.AsSpan((int)((RangeOffset - HighMemory) / RamMachine.Page), (int)(RangeLength / RamMachine.Page));

    /// <summary>Outside the range nothing moved (the guest is stopped); inside, every first byte is now 0.</summary>
    private static void AssertOnlyRangeChanged(RamBlock block, byte[] before)
    {
        byte[] now = RamMachine.FirstBytes(block, HighMemory, Memory - HighMemory);
        byte[] expected = (byte[])before.Clone();
        int first = (int)((RangeOffset - HighMemory) / RamMachine.Page);
        Array.Clear(expected, first, (int)(RangeLength / RamMachine.Page));
        Assert.Equal(expected, now);
    }

    /// <summary>The host changed guest memory behind KVM's log: a migration in flight must resend the range.</summary>
    private static void AssertRangeMarkedDirty(RamBlock block)
    {
        for (ulong page = RangeOffset / RamMachine.Page; page < (RangeOffset + RangeLength) / RamMachine.Page; page++)
        {
            Assert.True(block.DirtyBitmap.IsSet(page), $"page {page} of the range is not marked dirty");
        }
    }

    private static void AssertGuestSawZerosInRange(RamBlock block, byte[] before)
    {
        byte[] after = RamMachine.FirstBytes(block, HighMemory, Memory - HighMemory);
        byte[] asIfUntouched = (byte[])after.Clone();
        int first = (int)((RangeOffset - HighMemory) / RamMachine.Page);
        for (int i = first; i < first + (int)(RangeLength / RamMachine.Page); i++)
        {
            asIfUntouched[i] = unchecked((byte)(after[i] + before[i]));
        }

        Assert.NotEqual(before, after);
        Assert.Null(DirtyConsistency.Check(asIfUntouched));
    }

    private static ulong Resident(RamBlock block) => Mincore.CountResident(block.HostAddressOf(RangeOffset), RangeLength);

    private static long FileBytes(RamBlock block) => Stat.Fstat(block.Fd!).Blocks * 512;
}
