using System.Net.Sockets;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Source;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>Postcopy between two machines in this process over a real Unix socket, on the accelerator of the test pass and userfaultfd.</summary>
public class PostcopyTests : IDisposable
{
    private const ulong Memory = 128 << 20;
    private const ulong Dirtied = 16 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-postcopy-").FullName;

    private string SocketPath(string name) => Path.Combine(dir, name);

    [Theory]
    [InlineData(RamBackend.Anonymous)]
    [InlineData(RamBackend.Shared)]
    [InlineData(RamBackend.Hugetlbfs)]
    public void PostcopyMovesDirtyGuestWithoutLosingAByte(RamBackend backend)
    {
        using TestMachine source = TestMachine.Create(Memory, backend, "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory, backend);
        source.Machine.Start();
        source.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the source");

        // The push is capped (16 MiB takes it 250 ms) so that the destination's guest meets missing pages: uncapped,
        // the ring can deliver them all in a few milliseconds, before a guest held up that long by a busy host runs.
        // Sparse pages off: the guest's pages are mostly zeros and would not go through the ring (SparsePageMigrationTests).
        (MigrationStats sent, MigrationStats received) = MigratePostcopy(
            source, destination, SocketPath("pc.sock"), capabilities: new MigrationCapabilities { PostcopyRam = true, SparsePages = false }, parameters: PushCappedForFaults);

        Assert.Equal(MigrationStatus.Completed, sent.Status);
        Assert.Equal(MigrationStatus.Completed, received.Status);
        Assert.Equal(RunState.PostMigrate, source.Machine.RunState);
        Assert.Equal(0ul, sent.SparsePages);
        Assert.True(sent.PostcopyRequests > 0, "the guest never faulted on a missing page: this was not postcopy");
        Assert.Equal(sent.PostcopyRequests, received.PostcopyRequests);
        Assert.True(sent.PostcopyPreemptPages > 0, "no answer went on the preempt channel (on by default on both sides)");
        Assert.True(sent.PostcopySharedPages > 0, "the push did not go through the shared ring (on by default over a Unix socket)");
        Assert.Equal(sent.PostcopySharedPages, received.PostcopySharedPages);

        // Stop here to release there, measured on this host's one clock: positive and within the migration.
        Assert.InRange(sent.DowntimeUs, 1, (sent.TotalTimeMs + 1) * 1000);
        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
    }

    /// <summary>
    /// A garbage collection suspends managed threads only at safe points. On the software CPU the vCPU thread reads
    /// guest memory from managed code; if it ever faulted on a missing postcopy page there, a collection would wait
    /// for a thread stuck in the kernel waiting for a page that the (suspended) receiver thread would place: a hang.
    /// The CPU makes a page resident in native code before mapping it, so collections forced all the time through the
    /// migration change nothing.
    /// </summary>
    [Fact]
    public void PostcopyUnderConstantGarbageCollectionsFinishesAndLosesNothing()
    {
        using TestMachine source = TestMachine.Create(Memory, RamBackend.Anonymous, "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory, RamBackend.Anonymous);
        source.Machine.Start();
        source.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the source");

        using var done = new CancellationTokenSource();
        int collections = 0;
        var collector = new Thread(() =>
        {
            while (!done.IsCancellationRequested)
            {
                GC.Collect(2, GCCollectionMode.Forced, blocking: true);
                collections++;
                Thread.Sleep(1);
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            (MigrationStats sent, MigrationStats received) = MigratePostcopy(source, destination, SocketPath("gc.sock"), parameters: PushCappedForFaults);
            Assert.Equal(MigrationStatus.Completed, sent.Status);
            Assert.Equal(MigrationStatus.Completed, received.Status);
            Assert.True(sent.PostcopyRequests > 0, "the guest never faulted on a missing page: this was not postcopy");
            destination.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the destination");
        }
        finally
        {
            done.Cancel();
            collector.Join();
        }

        Assert.True(collections > 10, $"only {collections} collections ran during the migration");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
    }

    [Fact]
    public void ThePreemptChannelCarriesTheAnswersWhileThePushCrawls()
    {
        using TestMachine source = TestMachine.Create(Memory, guest: "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory);
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass");

        // At 16 MiB/s the push needs seconds for the dirtied range: the guest gets its pages from the answers.
        (MigrationStats sent, MigrationStats received) = MigratePostcopy(
            source, destination, SocketPath("preempt.sock"), parameters: new MigrationParameters { MaxBandwidth = 16 << 20 });

        Assert.Equal(MigrationStatus.Completed, received.Status);
        Assert.True(received.PostcopyPreemptPages > 0, $"no answer arrived on the preempt channel: {received}");
        Assert.InRange(received.PostcopyPreemptPages, 1ul, sent.PostcopyPreemptPages);
        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 2, "passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
    }

    /// <summary>
    /// postcopy-preempt off on either side: one connection (answers share it with the push), so no ring either.
    /// postcopy-shared-memory off on either side: the push goes through the socket.
    /// </summary>
    [Theory]
    [InlineData("postcopy-preempt", true)]
    [InlineData("postcopy-preempt", false)]
    [InlineData("postcopy-shared-memory", true)]
    [InlineData("postcopy-shared-memory", false)]
    public void WithAnOptionalTransportOffOnEitherSideThePostcopyFallsBack(string capability, bool offOnTheSource)
    {
        using TestMachine source = TestMachine.Create(Memory, guest: "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory);
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass");
        bool preempt = capability == "postcopy-preempt";
        MigrationCapabilities With(bool off) => preempt
            ? new MigrationCapabilities { PostcopyRam = true, PostcopyPreempt = !off }
            : new MigrationCapabilities { PostcopyRam = true, PostcopySharedMemory = !off };

        (MigrationStats sent, MigrationStats received) = MigratePostcopy(
            source,
            destination,
            SocketPath("fallback.sock"),
            capabilities: With(offOnTheSource),
            destinationCapabilities: With(!offOnTheSource),
            parameters: new MigrationParameters { MaxBandwidth = 64 << 20 });

        Assert.Equal(MigrationStatus.Completed, sent.Status);
        Assert.Equal(MigrationStatus.Completed, received.Status);
        Assert.True(sent.PostcopyRequests > 0, "the guest never faulted on a missing page");
        Assert.True(received.PostcopyFetchedPages > 0, "nothing was placed after the switchover");
        Assert.Equal(0ul, sent.PostcopySharedPages);
        Assert.Equal(0ul, received.PostcopySharedPages);
        if (preempt)
        {
            Assert.Equal(0ul, sent.PostcopyPreemptPages);
            Assert.Equal(0ul, received.PostcopyPreemptPages);
        }

        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 2, "passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
    }

    [Fact]
    public void ARingThatCannotCrossAProxyLeavesThePushOnTheSocket()
    {

        // The proxy forwards bytes, not descriptors: the ring offered never reaches the destination.
        using ProxiedMigration run = ProxiedMigration.Start(dir, preempt: true);
        run.Source.Machine.Migration.SetParameters(new MigrationParameters { MaxBandwidth = 64 << 20 });
        run.Source.Machine.Migration.StartPostcopy();
        run.WaitForTheEnd();

        MigrationStats sent = run.Migration.Stats;
        MigrationStats received = run.Destination.Machine.Migration.Stats!;
        Assert.Equal(MigrationStatus.Completed, sent.Status);
        Assert.Equal(MigrationStatus.Completed, received.Status);
        Assert.Equal(0ul, sent.PostcopySharedPages);
        Assert.Equal(0ul, received.PostcopySharedPages);
        run.Destination.WaitForSerial(s => s.Count(c => c == 'B') >= 2, "passes on the destination");
        Assert.Null(run.Destination.CheckDirtyConsistency(Dirtied));
    }

    [Fact]
    public void PingPongTenTimesStaysConsistent()
    {
        TestMachine current = TestMachine.Create(32 << 20, guest: "dirty-16m");
        try
        {
            current.Machine.Start();
            current.WaitForSerial(s => s.Contains('B'), "a pass");
            for (int hop = 0; hop < 10; hop++)
            {
                TestMachine next = TestMachine.Create(32 << 20);
                (MigrationStats sent, _) = MigratePostcopy(current, next, SocketPath($"hop{hop}.sock"));
                Assert.Equal(MigrationStatus.Completed, sent.Status);
                current.Dispose();
                current = next;

                int seen = current.CountB();
                current.WaitForSerial(s => s.Count(c => c == 'B') > seen + 1, $"passes after hop {hop}");
                Assert.Null(current.CheckDirtyConsistency(Dirtied));
                current.Machine.Resume();
            }
        }
        finally
        {
            current.Dispose();
        }
    }

    [Fact]
    public void RemapOnTheDestinationDuringPostcopyDropsThePagesAndFinishes()
    {
        using TestMachine source = TestMachine.Create(Memory, guest: "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory);
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass");
        source.Machine.Migration.SetParameters(new MigrationParameters { MaxBandwidth = 32 << 20 });

        // Data in that range, beyond what the guest dirties: a zero page needs no placement (it is only marked
        // received), so only data pages reach the remapped range and its ENOENT.
        const ulong Remapped = 96 << 20;
        source.Machine.Ram.FindByName(VirtualMachine.MainRamBlockName)!.GetSpan(Remapped, 16 << 20).Fill(0xA5);

        // Remap a range the source has not pushed yet (high in RAM, beyond what the guest dirties) while postcopy runs.
        (MigrationStats sent, MigrationStats received) = MigratePostcopy(source, destination, SocketPath("remap.sock"), afterSwitchover: () =>
            destination.Machine.RemapRam(VirtualMachine.MainRamBlockName, Remapped, 16 << 20));

        Assert.Equal(MigrationStatus.Completed, sent.Status);
        Assert.Equal(MigrationStatus.Completed, received.Status);
        Assert.True(received.PostcopyDroppedPages > 0, "no page hit the remapped range: the ENOENT path was not exercised");
        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 2, "passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
    }

    [Fact]
    public void ShrinkOnTheDestinationDuringPostcopyDropsTheTailAndFinishes()
    {
        // "spare" shrinks on the destination; "after" comes later in the push, so the destination still needs pages
        // while the source pushes the spare block's now-gone tail.
        (string, ulong, ulong, ulong) spare = ("spare", 0x4000_0000, 64 << 20, 128 << 20);
        (string, ulong, ulong, ulong) after = ("after", 0x8000_0000, 16 << 20, 16 << 20);
        using TestMachine source = TestMachine.Create(32 << 20, RamBackend.Anonymous, "dirty-16m", spare, after);
        using TestMachine destination = TestMachine.Create(32 << 20, RamBackend.Anonymous, null, spare, after);
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass");

        // Give the extra blocks content so their pages must move, then throttle so postcopy lasts.
        source.Machine.WithVcpusPaused(() =>
        {
            foreach (string name in new[] { "spare", "after" })
            {
                RamBlock block = source.Machine.Ram.FindByName(name)!;
                for (ulong offset = 0; offset < block.UsedLength; offset += 4096)
                {
                    block.GetSpan(offset, 1)[0] = 0x5A;
                }
            }

            return true;
        });
        source.Machine.Migration.SetParameters(new MigrationParameters { MaxBandwidth = 24 << 20 });

        // Shrink while the push is in the middle of the spare block, so pages beyond the new size are still on the way.
        (MigrationStats sent, MigrationStats received) = MigratePostcopy(
            source,
            destination,
            SocketPath("shrink.sock"),
            afterSwitchover: () => destination.Machine.ResizeRamBlock("spare", 8 << 20),
            switchoverPoint: s => s.RemainingBytes < 56 << 20);

        Assert.Equal(MigrationStatus.Completed, sent.Status);
        Assert.Equal(MigrationStatus.Completed, received.Status);
        Assert.True(received.PostcopyDroppedPages > 0, "no page arrived beyond the shrunk size: the drop path was not exercised");
        Assert.Equal(8ul << 20, destination.Machine.Ram.FindByName("spare")!.UsedLength);
        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 2, "passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
    }

    [Fact]
    public void PreemptChannelLostAfterSwitchoverPausesBothSidesAndKeepsTheSourceMemory()
    {

        // The preempt channel (the second connection) opens with a 12-byte stream header and a 25-byte hello; it
        // carries nothing else until the first answer, after the switchover. Drop it right there.
        using ProxiedMigration run = ProxiedMigration.Start(dir, preempt: true, faultAt: 12 + 25 + 1, faultOn: 1);
        run.Source.Machine.Migration.StartPostcopy();
        run.WaitForTheEnd();

        Assert.Equal(MigrationStatus.PostcopyPaused, run.Migration.Stats.Status);
        MigrationStats received = run.Destination.Machine.Migration.Stats!;
        Assert.Equal(MigrationStatus.PostcopyPaused, received.Status);
        Assert.Contains("preempt channel", received.ErrorDescription);
        run.AssertBothAliveAndTheSourceMemoryKept();
    }

    [Fact]
    public void PreemptChannelLostDuringPrecopyFailsTheMigrationBeforeTheSwitchover()
    {
        using ProxiedMigration run = ProxiedMigration.Start(dir, preempt: true);

        // The idle channel goes away while precopy runs; then postcopy is asked for.
        Assert.True(run.Proxy.Drop(1), "the source never opened a preempt channel");
        run.Source.Machine.Migration.StartPostcopy();
        Assert.True(run.Migration.Completion.Wait(TimeSpan.FromSeconds(120)));
        var refused = Assert.Throws<AggregateException>(() => run.Incoming.Wait(TimeSpan.FromSeconds(60)));

        // Nothing moved: the guest goes on here, and the destination says why it gave up.
        Assert.Equal(MigrationStatus.Failed, run.Migration.Stats.Status);
        Assert.Equal(RunState.Running, run.Source.Machine.RunState);
        Assert.Contains("preempt channel", refused.InnerException!.Message);
        Assert.Equal(MigrationStatus.Failed, run.Destination.Machine.Migration.Stats!.Status);
        int passes = run.Source.CountB();
        run.Source.WaitForSerial(s => s.Count(c => c == 'B') > passes, "a pass after the failed migration");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ConnectionLostAfterSwitchoverPausesBothSidesAndKeepsTheSourceMemory(bool preempt)
    {

        // 32 MiB the guest never touches but the push must move (2 s at 16 MiB/s): postcopy outlasts the drop below,
        // however fast the guest gets its own pages.
        using ProxiedMigration run = ProxiedMigration.Start(dir, preempt, prepare: source => FillWithData(source, 64 << 20, 32 << 20));
        run.Source.Machine.Migration.StartPostcopy();

        // The main connection goes once both sides are past the switchover.
        Wait.Until(
            () => (run.Migration.Stats.Status is MigrationStatus.PostcopyActive && run.Destination.Machine.Migration.Stats?.Status is MigrationStatus.PostcopyActive)
                || run.Migration.Stats.Status.IsFinished(),
            "no switchover");
        Assert.True(run.Proxy.Drop(0));
        run.WaitForTheEnd();

        Assert.Equal(MigrationStatus.PostcopyPaused, run.Migration.Stats.Status);
        Assert.Equal(MigrationStatus.PostcopyPaused, run.Destination.Machine.Migration.Stats!.Status);
        run.AssertBothAliveAndTheSourceMemoryKept();
    }

    /// <summary>Gives [<paramref name="offset"/>, +<paramref name="length"/>) of main RAM content (0x5A per page).</summary>
    private static void FillWithData(TestMachine machine, ulong offset, ulong length) => machine.Machine.WithVcpusPaused(() =>
    {
        RamBlock ram = machine.Machine.Ram.FindByName(VirtualMachine.MainRamBlockName)!;
        for (ulong page = offset; page < offset + length; page += 4096)
        {
            ram.GetSpan(page, 1)[0] = 0x5A;
        }

        return true;
    });

    /// <summary>
    /// Precopy for a moment (or until <paramref name="startPostcopyWhen"/>), then migrate-start-postcopy; returns both
    /// sides' final statistics. <paramref name="afterSwitchover"/> runs once both sides are past the switchover (and
    /// <paramref name="switchoverPoint"/> holds), while postcopy is still going.
    /// </summary>
    /// <summary>The postcopy push at 64 MiB/s (precopy uncapped): the guest on the destination surely faults during it.</summary>
    internal static readonly MigrationParameters PushCappedForFaults = new() { MaxPostcopyBandwidth = 64 << 20 };

    internal static (MigrationStats Sent, MigrationStats Received) MigratePostcopy(
        TestMachine source,
        TestMachine destination,
        string socketPath,
        Action? afterSwitchover = null,
        Func<MigrationStats, bool>? switchoverPoint = null,
        MigrationCapabilities? capabilities = null,
        MigrationParameters? parameters = null,
        Func<MigrationStats, bool>? startPostcopyWhen = null,
        MigrationCapabilities? destinationCapabilities = null)
    {
        capabilities ??= new MigrationCapabilities { PostcopyRam = true };
        source.Machine.Migration.SetCapabilities(capabilities);
        destination.Machine.Migration.SetCapabilities(destinationCapabilities ?? capabilities);
        if (parameters is not null)
        {
            source.Machine.Migration.SetParameters(parameters);
        }

        destination.Machine.SetStoppedState(RunState.InMigrate);
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{socketPath}"));
        var incoming = Task.Run(() => destination.Machine.Migration.RunIncoming(listener));
        MigrationSource migration = source.Machine.Migration.Migrate($"unix:{socketPath}");
        startPostcopyWhen ??= s => s.TransferredBytes > 2 << 20;
        Wait.Until(() => startPostcopyWhen(migration.Stats) || migration.Stats.Status.IsFinished(), "precopy never got as far as the switchover point");
        source.Machine.Migration.StartPostcopy();
        if (afterSwitchover is not null)
        {
            // Both sides past the switchover: the destination has registered its RAM and runs the guest.
            Wait.Until(
                () => (migration.Stats.Status is MigrationStatus.PostcopyActive
                        && destination.Machine.Migration.Stats?.Status is MigrationStatus.PostcopyActive
                        && (switchoverPoint?.Invoke(migration.Stats) ?? true))
                    || migration.Stats.Status.IsFinished(),
                "no switchover");
            afterSwitchover();
        }

        if (!migration.Completion.Wait(TimeSpan.FromSeconds(120)))
        {
            Assert.Fail($"the migration did not finish. source: {migration.Stats}; destination: {destination.Machine.Migration.Stats}");
        }

        Assert.True(incoming.Wait(TimeSpan.FromSeconds(60)), "the destination did not finish");
        return (migration.Stats, destination.Machine.Migration.Stats!);
    }


    public void Dispose() => Directory.Delete(dir, recursive: true);

    /// <summary>
    /// A dirty-16m machine migrating through a <see cref="FaultyProxy"/> to a fresh one, precopy under way at 16 MiB/s
    /// (postcopy-ram on both sides, postcopy not asked for yet). Disposes all of it.
    /// </summary>
    private sealed record ProxiedMigration(
        TestMachine Source, TestMachine Destination, Socket Listener, FaultyProxy Proxy, MigrationSource Migration, Task Incoming)
        : IDisposable
    {
        public static ProxiedMigration Start(string dir, bool preempt, long faultAt = long.MaxValue, int faultOn = 0, Action<TestMachine>? prepare = null)
        {
            TestMachine source = TestMachine.Create(Memory, guest: "dirty-16m");
            TestMachine destination = TestMachine.Create(Memory);
            source.Machine.Start();
            source.WaitForSerial(s => s.Contains('B'), "a pass");
            prepare?.Invoke(source);
            var capabilities = new MigrationCapabilities { PostcopyRam = true, PostcopyPreempt = preempt };
            source.Machine.Migration.SetCapabilities(capabilities);
            destination.Machine.Migration.SetCapabilities(capabilities);
            source.Machine.Migration.SetParameters(new MigrationParameters { MaxBandwidth = 16 << 20 });

            string target = Path.Combine(dir, "dst.sock");
            destination.Machine.SetStoppedState(RunState.InMigrate);
            Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{target}"));
            var incoming = Task.Run(() => destination.Machine.Migration.RunIncoming(listener));
            var proxy = new FaultyProxy(Path.Combine(dir, "proxy.sock"), target, faultAt, ProxyFault.Drop, faultOn);
            MigrationSource migration = source.Machine.Migration.Migrate($"unix:{Path.Combine(dir, "proxy.sock")}");
            Wait.Until(() => migration.Stats.TransferredBytes > 2 << 20, "precopy never got going");
            return new ProxiedMigration(source, destination, listener, proxy, migration, incoming);
        }

        public void WaitForTheEnd()
        {
            Assert.True(Migration.Completion.Wait(TimeSpan.FromSeconds(120)), "the source did not finish");
            Assert.True(Incoming.Wait(TimeSpan.FromSeconds(60)), "the destination did not finish");
        }

        /// <summary>Neither process part died, and the source never ran the guest again and still holds a consistent copy.</summary>
        public void AssertBothAliveAndTheSourceMemoryKept()
        {
            Assert.False(Source.Machine.Exited.IsCompleted);
            Assert.False(Destination.Machine.Exited.IsCompleted);
            Assert.NotEqual(RunState.Running, Source.Machine.RunState);
            Assert.Null(Source.CheckDirtyConsistency(Dirtied));
        }

        public void Dispose()
        {
            Proxy.Dispose();
            Listener.Dispose();
            Destination.Dispose();
            Source.Dispose();
        }
    }
}
