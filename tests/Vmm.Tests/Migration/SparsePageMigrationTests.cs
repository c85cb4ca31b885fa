using Vmm.Machine;
using Vmm.Migration;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// Sparse pages end to end: the dirty-16m guest's pages (one counter byte, 4095 zeros) pushed in postcopy as sparse
/// records, through the ring's stream or the plain socket, and sent in precopy's stopped pass, on every backend;
/// afterwards each page of the range holds its counter and nothing else, and the counters are consistent.
/// </summary>
public sealed class SparsePageMigrationTests : IDisposable
{
    private const ulong Memory = 128 << 20;
    private const ulong Dirtied = 16 << 20;
    private const ulong RangeStart = 1 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-sparse-").FullName;

    [Theory]
    [InlineData(RamBackend.Anonymous, true)]
    [InlineData(RamBackend.Anonymous, false)]
    [InlineData(RamBackend.Shared, true)]
    [InlineData(RamBackend.Shared, false)]
    [InlineData(RamBackend.Hugetlbfs, true)]
    public void PostcopyPushesMostlyZeroPagesAsSparsePagesAndLosesNothing(RamBackend backend, bool sharedRing)
    {
        using TestMachine source = TestMachine.Create(Memory, backend, "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory, backend);
        source.Machine.Start();
        source.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the source");

        // The push capped, so the guest there faults too, but not so low that its faults take every page first (an
        // answer goes whole): at 64 MiB/s one run here pushed no sparse page at all, presumably all of them requested.
        var capabilities = new MigrationCapabilities { PostcopyRam = true, PostcopySharedMemory = sharedRing };
        (MigrationStats sent, MigrationStats received) = PostcopyTests.MigratePostcopy(
            source, destination, Path.Combine(dir, "sp.sock"), capabilities: capabilities, parameters: new MigrationParameters { MaxPostcopyBandwidth = 256 << 20 });

        Assert.Equal(MigrationStatus.Completed, sent.Status);
        Assert.Equal(MigrationStatus.Completed, received.Status);
        AssertSparsePagesWent(backend, sent, received, "no page of the push went as a sparse page");

        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
        Assert.Null(OnlyCountersIn(destination));
    }

    /// <summary>
    /// Precopy sends the pages dirtied while the guest is stopped as sparse pages (the live passes send them whole); with
    /// postcopy-ram on, a precopy that never switches writes shared blocks through their alias (MINOR faults).
    /// </summary>
    [Theory]
    [InlineData(RamBackend.Anonymous, false)]
    [InlineData(RamBackend.Shared, false)]
    [InlineData(RamBackend.Shared, true)]
    [InlineData(RamBackend.Hugetlbfs, false)]
    public void PrecopySendsTheLastPagesAsSparsePagesAndLosesNothing(RamBackend backend, bool postcopyRam)
    {
        using TestMachine source = TestMachine.Create(Memory, backend, "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory, backend);
        source.Machine.Migration.SetCapabilities(new MigrationCapabilities { PostcopyRam = postcopyRam });
        destination.Machine.Migration.SetCapabilities(new MigrationCapabilities { PostcopyRam = postcopyRam });
        source.Machine.Start();
        source.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the source");

        MigrationStats sent = PrecopyTests.Migrate(source, destination, Path.Combine(dir, "pre.sock"));
        MigrationStats received = destination.Machine.Migration.Stats!;

        Assert.Equal(MigrationStatus.Completed, sent.Status);
        AssertSparsePagesWent(backend, sent, received, "no page dirtied in the downtime went as a sparse page");

        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
        Assert.Null(OnlyCountersIn(destination));
    }

    /// <summary>With sparse-pages off on the source every page goes whole.</summary>
    [Fact]
    public void WithSparsePagesOffNoPageGoesSparse()
    {
        using TestMachine source = TestMachine.Create(Memory, RamBackend.Anonymous, "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory, RamBackend.Anonymous);
        source.Machine.Start();
        source.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the source");

        var capabilities = new MigrationCapabilities { PostcopyRam = true, SparsePages = false };
        (MigrationStats sent, MigrationStats received) = PostcopyTests.MigratePostcopy(source, destination, Path.Combine(dir, "off.sock"), capabilities: capabilities);

        Assert.Equal(MigrationStatus.Completed, sent.Status);
        Assert.Equal(0ul, sent.SparsePages);
        Assert.Equal(0ul, received.SparsePages);
        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
    }

    /// <summary>Both sides counted the same sparse pages: some, except on hugetlbfs (2 MiB host pages go whole, never sparse).</summary>
    private static void AssertSparsePagesWent(RamBackend backend, MigrationStats sent, MigrationStats received, string none)
    {
        Assert.Equal(sent.SparsePages, received.SparsePages);
        if (backend == RamBackend.Hugetlbfs)
        {
            Assert.Equal(0ul, sent.SparsePages);
        }
        else
        {
            Assert.True(sent.SparsePages > 0, none);
        }
    }

    /// <summary>Every page of the dirtied range: its first byte is the guest's counter, the other 4095 are zeros.</summary>
    private static string? OnlyCountersIn(TestMachine machine)
    {
        byte[] page = new byte[4096];
        for (ulong address = RangeStart; address < RangeStart + Dirtied; address += 4096)
        {
            Assert.Equal(page.Length, machine.Machine.Memory.Read(address, page));
            int wrong = page.AsSpan(1).IndexOfAnyExcept((byte)0);
            if (wrong >= 0)
            {
                return $"byte 0x{address + 1 + (ulong)wrong:x} is 0x{page[1 + wrong]:x2}, not 0";
            }
        }

        return null;
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);
}
