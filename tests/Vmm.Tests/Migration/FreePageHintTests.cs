using System.Net.Sockets;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Source;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// Free-page hints end to end, in one process on the accelerator of the test pass: the free-page-hint guest reports a 32 MiB region as free
/// while precopy runs, the source puts those pages off, and they still arrive — through the discard set, page
/// requests and the push in postcopy, through one more live pass in precopy. Were a hinted page dropped, the
/// destination would hold zeros there: the guest's own check (it prints "X" and exits with status 39) and the byte
/// comparison with the source both catch that.
/// </summary>
public class FreePageHintTests : IDisposable
{
    private const ulong Memory = 128 << 20;
    private const ulong Dirtied = 16 << 20;

    // The free-page-hint guest's layout (guests/Builder/FreePageHint.cs, guests/README.md).
    private const ulong FreeStart = (1 << 20) + Dirtied;
    private const ulong FreeLength = 32 << 20;
    private const ulong LastRequestIdAddress = 0x6010;
    private const ulong MismatchAddress = 0x6014;

    /// <summary>Slow enough that the first pass is still in the dirty range when the guest answers the request.</summary>
    private const ulong Bandwidth = 32 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-hints-").FullName;

    [Theory]
    [InlineData(RamBackend.Anonymous)]
    [InlineData(RamBackend.Shared)]
    [InlineData(RamBackend.Hugetlbfs)]
    public void PostcopyAfterHintsServesTheHintedPagesAndLosesNothing(RamBackend backend)
    {
        using TestMachine source = TestMachine.Create(Memory, backend, "free-page-hint");
        using TestMachine destination = TestMachine.Create(Memory, backend);
        source.Machine.Start();
        source.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the source");
        source.Machine.Migration.SetCapabilities(new MigrationCapabilities { PostcopyRam = true });
        destination.Machine.Migration.SetCapabilities(new MigrationCapabilities { PostcopyRam = true });

        // Half the usual bandwidth: the answers travel outside the cap (on the preempt channel), so only the push is
        // slowed, and it must last long enough for three passes of a guest that faults on most of its pages.
        (MigrationSource migration, Task incoming) = StartMigration(source, destination, bandwidth: Bandwidth / 2);
        uint requestId = WaitForHints(source, migration, destination);
        source.Machine.Migration.StartPostcopy();

        // Each pass reads 64 hinted pages, none of them here yet: they are requested and must be answered at once. Were
        // a request for a "clean" hinted page ignored (seed 002), the vCPU would wait for the throttled push to reach
        // that page (the dirty range alone takes it ~1 s), and postcopy would be over before a few passes were done.
        Wait.Until(
            () => destination.Machine.Migration.Stats?.Status is MigrationStatus.PostcopyActive || migration.Stats.Status.IsFinished(),
            "no switchover");
        int passesAtSwitchover = destination.CountB();
        Wait.Until(
            () => destination.CountB() >= passesAtSwitchover + 3 || destination.Machine.Migration.Stats?.Status is not MigrationStatus.PostcopyActive,
            "the guest neither made progress nor finished postcopy");
        Assert.True(
            destination.Machine.Migration.Stats?.Status is MigrationStatus.PostcopyActive,
            $"postcopy ended before the guest did three passes over hinted pages ({destination.CountB() - passesAtSwitchover} done): a hinted page stalled");
        (MigrationStats sent, MigrationStats received) = Finish(migration, incoming, destination);

        Assert.Equal(MigrationStatus.Completed, sent.Status);
        Assert.Equal(MigrationStatus.Completed, received.Status);
        Assert.True(sent.FreePageHintSkippedPages >= FreeLength / 4096, $"only {sent.FreePageHintSkippedPages} pages were put off on hints");
        Assert.True(sent.PostcopyRequests > 0, "the destination never requested a page: this was not postcopy");
        AssertNobodyAsksAnyMore(source, destination, requestId);
        AssertGuestCarriesOn(source, destination);
    }

    [Theory]
    [InlineData(RamBackend.Anonymous)]
    [InlineData(RamBackend.Shared)]
    [InlineData(RamBackend.Hugetlbfs)]
    public void PrecopyAfterHintsSendsTheHintedPagesBeforeTheGuestStops(RamBackend backend)
    {
        using TestMachine source = TestMachine.Create(Memory, backend, "free-page-hint");
        using TestMachine destination = TestMachine.Create(Memory, backend);
        source.Machine.Start();
        source.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the source");

        // The throttled link moves the guest's 16 MiB of dirtying in about 0.5 s: let that converge after a pass or two
        // rather than run 30 passes.
        (MigrationSource migration, Task incoming) = StartMigration(source, destination, downtimeLimitMs: 1000);
        uint requestId = WaitForHints(source, migration, destination);
        (MigrationStats sent, MigrationStats received) = Finish(migration, incoming, destination);

        Assert.Equal(MigrationStatus.Completed, sent.Status);
        Assert.Equal(MigrationStatus.Completed, received.Status);
        Assert.True(sent.FreePageHintSkippedPages >= FreeLength / 4096, $"only {sent.FreePageHintSkippedPages} pages were put off on hints");
        AssertNobodyAsksAnyMore(source, destination, requestId);
        AssertGuestCarriesOn(source, destination);
    }

    private (MigrationSource Migration, Task Incoming) StartMigration(TestMachine source, TestMachine destination, ulong downtimeLimitMs = 300, ulong bandwidth = Bandwidth)
    {
        string socketPath = Path.Combine(dir, "hints.sock");
        source.Machine.Migration.SetParameters(new MigrationParameters { MaxBandwidth = bandwidth, DowntimeLimitMs = downtimeLimitMs });
        destination.Machine.SetStoppedState(RunState.InMigrate);
        Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{socketPath}"));
        var incoming = Task.Run(() =>
        {
            using (listener)
            {
                destination.Machine.Migration.RunIncoming(listener);
            }
        });
        return (source.Machine.Migration.Migrate($"unix:{socketPath}"), incoming);
    }

    /// <summary>Waits until the guest has answered the migration's request; returns the request id it answered.</summary>
    private static uint WaitForHints(TestMachine source, MigrationSource migration, TestMachine destination)
    {
        // All of them: the guest reports the free region as eight 4 MiB hints, one after the other, and a switchover
        // closes the request (a hint after it is ignored).
        Wait.Until(
            () => (ulong)source.Machine.FreePageHints.AcceptedHints >= FreeLength / (4 << 20) || migration.Stats.Status.IsFinished(),
            "the guest never gave all its hints");
        MigrationStats stats = migration.Stats;
        Assert.True(stats.Status == MigrationStatus.Active, $"the migration should still be in precopy: {stats}; destination: {destination.Machine.Migration.Stats}");
        uint requestId = source.Machine.FreePageHints.Status;
        Assert.NotEqual(0u, requestId);
        Assert.Equal(requestId, source.ReadUInt32(LastRequestIdAddress));
        Assert.True(source.Machine.FreePageHints.AcceptedHints > 0);
        return requestId;
    }

    private static (MigrationStats Sent, MigrationStats Received) Finish(MigrationSource migration, Task incoming, TestMachine destination)
    {
        if (!migration.Completion.Wait(TimeSpan.FromSeconds(120)))
        {
            Assert.Fail($"the migration did not finish. source: {migration.Stats}; destination: {destination.Machine.Migration.Stats}");
        }

        Assert.True(incoming.Wait(TimeSpan.FromSeconds(60)), "the destination did not finish");
        return (migration.Stats, destination.Machine.Migration.Stats!);
    }

    /// <summary>STATUS reads 0 on both sides once the guest has moved, and the id travelled with the device state.</summary>
    private static void AssertNobodyAsksAnyMore(TestMachine source, TestMachine destination, uint requestId)
    {
        Assert.Equal(0u, source.Machine.FreePageHints.Status);
        Assert.Equal(0u, destination.Machine.FreePageHints.Status);
        Assert.Equal(requestId, destination.ReadUInt32(LastRequestIdAddress));
    }

    /// <summary>
    /// The guest runs on over there long enough to read every page of its free region, finds no bad page, and the
    /// free region and the dirty range match the source's copy.
    /// </summary>
    private static void AssertGuestCarriesOn(TestMachine source, TestMachine destination)
    {
        // 64 free pages are checked per pass: 128 passes read all 8192 of them.
        int seen = destination.CountB();
        destination.WaitForSerial(s => s.Count(c => c == 'B') >= seen + 150, "enough passes on the destination to read the whole free region", seconds: 120);
        Assert.DoesNotContain('X', destination.Serial.Text);
        Assert.Equal(0u, destination.ReadUInt32(MismatchAddress));
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));

        // The source is stopped (postmigrate) and the destination paused by the check above: both copies hold still.
        Assert.Equal(RunState.PostMigrate, source.Machine.RunState);
        byte[] there = ReadRange(destination, FreeStart, FreeLength);
        byte[] here = ReadRange(source, FreeStart, FreeLength);
        for (ulong page = 0; page < FreeLength / 4096; page++)
        {
            ulong address = FreeStart + (page * 4096);
            Assert.True(BitConverter.ToUInt32(there, (int)(page * 4096)) == address, $"free page 0x{address:x} lost its content on the destination");
        }

        Assert.True(here.AsSpan().SequenceEqual(there), "the free region differs between source and destination");
    }

    private static byte[] ReadRange(TestMachine machine, ulong address, ulong length)
    {
        byte[] bytes = new byte[length];
        Assert.Equal((int)length, machine.Machine.Memory.Read(address, bytes));
        return bytes;
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);
}
