using System.Diagnostics;
using System.Net.Sockets;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Source;
using Vmm.Migration.Stream;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Vmm.Tests.Migration;

/// <summary>
/// The postcopy rules of seed 002 at the protocol level, each side checked against a fake peer written with the
/// stream classes: the source must answer every page request (even for a page it believes clean or already sent),
/// and the destination must treat a page that arrives after placement as a harmless duplicate and ask for each
/// missing page only once, however many faults hit it.
/// </summary>
public class PostcopyRuleTests(ITestOutputHelper output) : IDisposable
{
    private const ulong Memory = 32 << 20;
    private const ulong PageSize = 4096;
    private const ulong Dirtied = 16 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-postcopy-rules-").FullName;

    private string SocketPath(string name) => Path.Combine(dir, name);

    /// <summary>
    /// A real source migrating a running dirty guest to a fake destination. After the switchover the fake asks for
    /// (a) a page sent in precopy and not in the discard set, (b) the same page again, (c) a page the background push
    /// already sent: each must be answered with a Page record holding the source's memory (stopped since the
    /// switchover). The fake also checks the record sequence and that its image of guest RAM ends up equal to the
    /// source's.
    /// </summary>
    [Fact]
    public void SourceServesEveryRequestEvenForAPageItBelievesCleanOrAlreadySent()
    {

        // A page the guest never writes (it dirties [1 MiB, 17 MiB) only): clean once the first pass has sent it.
        const ulong CleanAddress = (20 << 20) + 0x3000;
        byte[] cleanContent = FakePeer.Pattern(0xC3);
        using TestMachine source = TestMachine.Create(Memory, guest: "dirty-16m");
        source.Machine.Memory.Write(CleanAddress, cleanContent);
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass on the source");
        source.Machine.Migration.SetCapabilities(new MigrationCapabilities { PostcopyRam = true });

        // Only migrate-start-postcopy may end precopy: a fast fake destination must not tempt a precopy switchover.
        source.Machine.Migration.SetParameters(new MigrationParameters { DowntimeLimitMs = 0, MaxPasses = 1_000_000 });

        string path = SocketPath("fake-destination.sock");
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{path}"));
        MigrationSource migration = source.Machine.Migration.Migrate($"unix:{path}");
        using MigrationConnection connection = FakePeer.AcceptWithin(listener, TimeSpan.FromSeconds(30));
        var returnPath = new ReturnPathWriter(connection.Writer);
        // The pre-discard: the source waits, guest running, until the discards so far are acknowledged. A request
        // made before that (something on the destination touched registered memory) must be answered after Run.
        const ulong EarlyAddress = (1 << 20) + 0x5000;
        int mainIndex = -1;

        // The guest's code and stack share page 7 (loaded at 0x7C00, stack below it): whatever it did last, the vCPU
        // stops with its next instruction there. Marked dirty while the source waits for PostcopyDiscarded, so it is
        // stale at the switchover for sure and must go with the state.
        const ulong CodePage = 0x7000;
        RamBlock sourceMain = source.Machine.Ram.FindByName(VirtualMachine.MainRamBlockName)!;
        using var stream = new RecordLog(
            connection.Reader,
            "the source's main stream",
            header: connection.InputStream,
            onRecord: r =>
            {
                if (r.Type == RecordType.PostcopyDiscardSync)
                {
                    sourceMain.DirtyBitmap.Set(CodePage / PageSize);
                    returnPath.RequestPage(mainIndex, EarlyAddress, PageSize);
                    returnPath.Send(RecordType.PostcopyDiscarded);
                }
            });
        try
        {
            SeenRecord setup = stream.WaitFor(r => r.Type == RecordType.Setup, "Setup");
            Assert.Equal(0L, setup.Seq);
            RamLayout layout = setup.Layout!;
            int main = layout.Blocks.ToList().FindIndex(b => b.Name == VirtualMachine.MainRamBlockName);
            Assert.True(main >= 0, "the layout has no main RAM block");
            mainIndex = main;
            Assert.Equal(0ul, layout.Blocks[main].GuestBase);
            RamBlock[] sourceBlocks = [.. layout.Blocks.Select(b => source.Machine.Ram.FindByName(b.Name)!)];
            returnPath.Send(RecordType.SetupAccepted);

            SeenRecord advise = stream.WaitFor(r => r.Type == RecordType.PostcopyAdvise, "PostcopyAdvise", after: setup.Seq);
            Assert.Equal(1L, advise.Seq);
            returnPath.Send(RecordType.PostcopyAdviseAccepted);

            // Every page has been sent once at the end of the first pass; then switch to postcopy.
            SeenRecord firstPass = stream.WaitFor(r => r.Type == RecordType.PassEnd, "the end of the first precopy pass", after: advise.Seq, seconds: 60);
            source.Machine.Migration.StartPostcopy();
            SeenRecord run = stream.WaitFor(r => r.Type is RecordType.PostcopyRun or RecordType.End, "PostcopyRun", after: firstPass.Seq, seconds: 60);
            Assert.Equal(RecordType.PostcopyRun, run.Type);
            returnPath.Send(RecordType.PostcopyRunning);
            Assert.Equal(RunState.FinishMigrate, source.Machine.RunState);

            // The switchover's records: Discard... (guest running), DiscardSync, Discard... (pages dirtied since),
            // Listen, State..., then the pages the vCPU touches first if they are stale there, Run. No page before
            // Listen: one sent after the pre-discard would land in a range the destination counts as missing.
            SeenRecord[] upToRun = stream.Snapshot()[..(int)(run.Seq + 1)];
            int firstDiscard = Array.FindIndex(upToRun, r => r.Type == RecordType.PostcopyDiscard);
            int sync = Array.FindIndex(upToRun, r => r.Type == RecordType.PostcopyDiscardSync);
            int listen = Array.FindIndex(upToRun, r => r.Type == RecordType.PostcopyListen);
            Assert.True(firstDiscard > firstPass.Seq, "no PostcopyDiscard record before Run");
            Assert.True(sync > firstDiscard, "no PostcopyDiscardSync after the pre-discard");
            Assert.True(listen > sync, "no PostcopyListen between the discard set and Run");
            Assert.All(upToRun[firstDiscard..sync], r => Assert.Equal(RecordType.PostcopyDiscard, r.Type));
            Assert.All(upToRun[(sync + 1)..listen], r => Assert.Equal(RecordType.PostcopyDiscard, r.Type));
            SeenRecord[] afterListen = upToRun[(listen + 1)..(int)run.Seq];
            int states = Array.FindIndex(afterListen, r => r.Type != RecordType.State) is var end and >= 0 ? end : afterListen.Length;
            Assert.True(states > 0, "no State section between Listen and Run");
            SeenRecord[] firstTouch = afterListen[states..];
            Assert.All(firstTouch, r => Assert.Equal(RecordType.Page, r.Type));
            Assert.InRange(firstTouch.Length, 1, 4);
            Assert.Contains(firstTouch, r => r.Block == main && r.Offset == CodePage);

            var discarded = new HashSet<(int Block, ulong Offset)>();
            foreach (SeenRecord discard in upToRun[firstDiscard..listen].Where(r => r.Type == RecordType.PostcopyDiscard))
            {
                foreach ((ulong offset, ulong length) in discard.Ranges!)
                {
                    for (ulong page = offset; page < offset + length; page += PageSize)
                    {
                        discarded.Add((discard.Block, page));
                    }
                }
            }

            Assert.NotEmpty(discarded);
            foreach (SeenRecord page in firstTouch)
            {
                Assert.Contains((page.Block, page.Offset), discarded);
                AssertHoldsSourceMemory(sourceBlocks[page.Block], page, "a first-touch page");
            }

            Dictionary<(int, ulong), (SeenRecord Record, int Index)> precopy = LatestPages(upToRun[..firstDiscard]);
            Assert.True(precopy.TryGetValue((main, CleanAddress), out var cleanSent), "the clean page was never sent in precopy");
            Assert.Equal(cleanContent, cleanSent.Record.Data);
            Assert.DoesNotContain((main, CleanAddress), discarded);

            // A page the background push has sent since the switchover (it pushes the discard set only). The answer to
            // the early request comes first, and that page may well be clean: it is not the push's.
            SeenRecord pushed = stream.WaitFor(
                r => r.Type == RecordType.Page && (r.Block, r.Offset) != (main, EarlyAddress), "a page pushed after the switchover", after: run.Seq);
            Assert.Contains((pushed.Block, pushed.Offset), discarded);

            SeenRecord RequestAndWait(int block, ulong offset, string what)
            {
                long mark = stream.Last;
                returnPath.RequestPage(block, offset, PageSize);
                SeenRecord answer = stream.WaitFor(
                    r => r.Type == RecordType.Page && r.Block == block && r.Offset == offset,
                    $"the answer to a request for {what} (0x{offset:x})",
                    after: mark,
                    seconds: 10);
                Assert.Equal(sourceBlocks[block].PageSize, answer.Length);
                AssertHoldsSourceMemory(sourceBlocks[block], answer, what);
                return answer;
            }

            SeenRecord clean = RequestAndWait(main, CleanAddress, "a clean page (sent in precopy, not discarded)");
            Assert.Equal(cleanContent, clean.Data);
            RequestAndWait(main, CleanAddress, "the same clean page again (a duplicate request)");
            RequestAndWait(pushed.Block, pushed.Offset, "a page already pushed in postcopy");

            SeenRecord pushDone = stream.WaitFor(r => r.Type == RecordType.PostcopyPushDone, "PostcopyPushDone", after: run.Seq, seconds: 60);

            // What a destination would hold now: every discarded page came again after Listen (the first-touch pages
            // before Run, the rest after it), and all of RAM is the source's.
            SeenRecord[] all = stream.Snapshot();
            var sentAfterListen = LatestPages(all[(listen + 1)..]).Keys.ToHashSet();
            Assert.Empty(discarded.Where(p => !sentAfterListen.Contains(p)).Take(5));
            AssertImageIsSourceMemory(LatestPages(all), sourceBlocks);

            var clock = Stopwatch.StartNew();
            returnPath.Send(RecordType.Complete);
            Assert.True(migration.Completion.Wait(TimeSpan.FromSeconds(30)), $"the source did not finish after Complete: {migration.Stats}");
            output.WriteLine($"source finished {clock.ElapsedMilliseconds} ms after Complete (connection kept open, as a real destination does)");
            output.WriteLine($"{discarded.Count} pages discarded; {pushDone.Seq - run.Seq} records between Run and PushDone");

            MigrationStats stats = migration.Stats;
            Assert.Equal(MigrationStatus.Completed, stats.Status);
            Assert.Null(stats.ErrorDescription);
            Assert.Equal(4ul, stats.PostcopyRequests);
            Assert.Equal(RunState.PostMigrate, source.Machine.RunState);
        }
        finally
        {
            connection.Abort();
            migration.Completion.Wait(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>
    /// A fake source drives a real destination through postcopy. Page P arrives with content A, then again with B, then
    /// again as a zero page; a page valid since precopy arrives with B too: the destination keeps what it placed first,
    /// counts duplicates, reports no error, and completes once every discarded page is there. The guest (state from a
    /// real paused source) runs on the destination meanwhile and its requests are served.
    /// </summary>
    [Fact]
    public void ADuplicateArrivingAfterPlacementIsHarmless()
    {
        using var run = new FakeSourceRun(SocketPath("duplicate.sock"));
        run.Start([.. FakeSourceRun.GuestPages, FakeSourceRun.P, .. FakeSourceRun.Tail], held: []);

        byte[] a = run.OriginPage(FakeSourceRun.P);
        byte[] b = FakePeer.Pattern(0xB7);
        Assert.NotEqual(a, b);

        run.SendPage(FakeSourceRun.P, a);
        run.SendPage(FakeSourceRun.P, b);
        MigrationStats stats = run.WaitProcessed("P with A, then P with B");
        Assert.Equal(1ul, stats.PostcopyDuplicatePages);
        Assert.Equal(a, run.ReadDestination(FakeSourceRun.P));

        run.SendPage(FakeSourceRun.P, new byte[PageSize]);
        stats = run.WaitProcessed("P again, as a zero page");
        Assert.Equal(2ul, stats.PostcopyDuplicatePages);
        Assert.Equal(a, run.ReadDestination(FakeSourceRun.P));

        // A page that is here since precopy (never discarded) is not overwritten either.
        byte[] n = run.OriginPage(FakeSourceRun.N);
        run.SendPage(FakeSourceRun.N, b);
        stats = run.WaitProcessed("N, valid since precopy, with other content");
        Assert.Equal(3ul, stats.PostcopyDuplicatePages);
        Assert.Equal(n, run.ReadDestination(FakeSourceRun.N));
        Assert.Equal(MigrationStatus.PostcopyActive, stats.Status);
        Assert.Null(stats.ErrorDescription);
        Assert.Null(run.ReturnPath!.ClosedReason);

        MigrationStats final = run.Finish(alreadyPlaced: [FakeSourceRun.P]);
        Assert.True(final.PostcopyDuplicatePages >= 3, $"{final.PostcopyDuplicatePages} duplicates counted");
        Assert.Equal(0ul, final.PostcopyDroppedPages);
        Assert.Equal(a, run.ReadDestination(FakeSourceRun.P));
        Assert.Equal(n, run.ReadDestination(FakeSourceRun.N));
        foreach (ulong tail in FakeSourceRun.Tail)
        {
            Assert.Equal(run.OriginPage(tail), run.ReadDestination(tail));
        }

        run.AssertEveryRequestWasOnceAndForADiscardedPage();
        output.WriteLine($"destination: {final.PostcopyRequests} requests, {final.PostcopyDuplicatePages} duplicates, {final.PostcopyLocalFaults} local zero faults");

        // The guest carries on at the destination with consistent memory.
        run.Destination!.WaitForSerial(s => s.Contains('B'), "a pass on the destination");
        Assert.Null(run.Destination.CheckDirtyConsistency(Dirtied));
    }

    /// <summary>
    /// Pages come in runs (one record, several pages) after a pre-discard: the destination acknowledges the discards
    /// sent before PostcopyDiscardSync, takes more after it, and places from a run only the pages still missing. A
    /// page placed earlier and a page valid since precopy keep their content though the run carries other bytes for
    /// them; a zero run over pages that are here changes nothing.
    /// </summary>
    [Fact]
    public void ARunOfPagesPlacesOnlyThePagesStillMissing()
    {
        using var run = new FakeSourceRun(SocketPath("runs.sock"));
        run.Start([.. FakeSourceRun.GuestPages, .. FakeSourceRun.Tail], held: [], preDiscard: true);
        ulong[] tail = FakeSourceRun.Tail;
        ulong afterTail = tail[^1] + PageSize;

        run.SendPage(tail[2], run.OriginPage(tail[2]));
        Assert.Equal(0ul, run.WaitProcessed("one tail page alone").PostcopyDuplicatePages);

        // The whole tail and the page after it in one record; the slots of the two pages already here hold garbage.
        byte[] data = new byte[(tail.Length + 1) * (int)PageSize];
        for (int i = 0; i <= tail.Length; i++)
        {
            ulong offset = tail[0] + ((ulong)i * PageSize);
            Span<byte> slot = data.AsSpan(i * (int)PageSize, (int)PageSize);
            if (offset == tail[2] || offset == afterTail)
            {
                slot.Fill(0xEE);
            }
            else
            {
                run.OriginPage(offset).CopyTo(slot);
            }
        }

        run.SendRun(tail[0], (ulong)data.Length, data);
        Assert.Equal(2ul, run.WaitProcessed("the run").PostcopyDuplicatePages);

        run.SendRun(tail[0], (ulong)tail.Length * PageSize, data: null);
        MigrationStats stats = run.WaitProcessed("a zero run over the tail");
        Assert.Equal(2ul + (ulong)tail.Length, stats.PostcopyDuplicatePages);
        foreach (ulong offset in tail.Append(afterTail))
        {
            Assert.Equal(run.OriginPage(offset), run.ReadDestination(offset));
        }

        MigrationStats final = run.Finish(alreadyPlaced: tail);
        Assert.Equal(0ul, final.PostcopyDroppedPages);
        run.AssertEveryRequestWasOnceAndForADiscardedPage();
        run.Destination!.WaitForSerial(s => s.Contains('B'), "a pass on the destination");
        Assert.Null(run.Destination.CheckDirtyConsistency(Dirtied));
    }

    /// <summary>
    /// After PostcopyDiscardSync the destination's memory is registered with userfaultfd: a precopy page written then
    /// would fault into its own userfaultfd and hang the receive thread. A Page record in that window is a protocol
    /// error, said on the return path; no guest runs.
    /// </summary>
    [Fact]
    public void APageAfterTheDiscardSyncIsAProtocolError()
    {
        using TestMachine destination = TestMachine.Create(Memory);
        destination.Machine.Migration.SetCapabilities(new MigrationCapabilities { PostcopyRam = true });
        destination.Machine.SetStoppedState(RunState.InMigrate);
        string path = SocketPath("page-after-sync.sock");
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{path}"));
        var incoming = Task.Run(() => destination.Machine.Migration.RunIncoming(listener));

        using MigrationConnection connection = MigrationConnection.Connect(MigrationUri.Parse($"unix:{path}"), TimeSpan.FromSeconds(10));
        using var returnPath = new RecordLog(connection.Reader, "the destination's return path");
        try
        {
            RecordWriter writer = connection.Writer;
            StreamHeader.Write(connection.OutputStream);
            RamLayout.Of(destination.Machine.Ram).Write(writer);
            writer.Flush();
            returnPath.WaitFor(r => r.Type == RecordType.SetupAccepted, "SetupAccepted");
            writer.Write(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
            writer.Flush();
            returnPath.WaitFor(r => r.Type == RecordType.PostcopyAdviseAccepted, "PostcopyAdviseAccepted");
            DiscardRecord.Write(writer, 0, [(2ul << 20, 1ul << 20)]);
            writer.Write(RecordType.PostcopyDiscardSync, []);
            writer.Flush();
            returnPath.WaitFor(r => r.Type == RecordType.PostcopyDiscarded, "PostcopyDiscarded");

            PageRecord.WriteData(writer, 0, 2ul << 20, FakePeer.Pattern(0x77));
            writer.Flush();
            SeenRecord error = returnPath.WaitFor(r => r.Type == RecordType.Error, "the destination's error");
            Assert.Equal("protocol error: a Page record between PostcopyDiscardSync and PostcopyListen", error.Text);
            Assert.True(((IAsyncResult)incoming).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(30)), "the destination did not give up");
            Assert.IsType<MigrationStreamException>(incoming.Exception?.InnerException);
            Assert.Equal(MigrationStatus.Failed, destination.Machine.Migration.Stats!.Status);
            Assert.Equal(RunState.InMigrate, destination.Machine.RunState);
        }
        finally
        {
            connection.Abort();
            ((IAsyncResult)incoming).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>
    /// Several threads fault on the same missing page while its request is outstanding (the fake source holds the
    /// answer): the destination sends one request for it, every faulting thread gets the page once it is placed, and
    /// no page is requested twice over the whole run (the guest's own faults included).
    /// </summary>
    [Fact]
    public void SeveralFaultsOnOneMissingPageMakeOneRequest()
    {
        const int Readers = 3;
        using var run = new FakeSourceRun(SocketPath("dedup.sock"));
        run.Start([.. FakeSourceRun.GuestPages, FakeSourceRun.Q, .. FakeSourceRun.Tail], held: [FakeSourceRun.Q]);

        nint address = run.DestinationRam!.HostAddressOf(FakeSourceRun.Q);
        byte[][] copies = new byte[Readers][];
        using var started = new CountdownEvent(Readers);
        Thread[] readers = [.. Enumerable.Range(0, Readers).Select(i => new Thread(() =>
        {
            started.Signal();
            copies[i] = FakePeer.ReadNative(address, (int)PageSize);
        })
        { IsBackground = true, Name = $"fault on Q #{i}" })];
        try
        {
            foreach (Thread reader in readers)
            {
                reader.Start();
            }

            Assert.True(started.Wait(TimeSpan.FromSeconds(10)), "the reader threads did not start");
            run.ReturnPath!.WaitFor(r => r.Type == RecordType.PageRequest && r.Offset == FakeSourceRun.Q, "a request for the page the readers fault on", seconds: 10);

            // Let every reader's fault reach the fault thread (it busy-polls after a fault), then check they all wait.
            Thread.Sleep(300);
            Assert.All(readers, r => Assert.True(r.IsAlive, "a reader got the page before it was sent"));
            Assert.Equal(1, run.RequestCount(FakeSourceRun.Q));

            run.SendPage(FakeSourceRun.Q, run.OriginPage(FakeSourceRun.Q));
            foreach (Thread reader in readers)
            {
                Assert.True(reader.Join(TimeSpan.FromSeconds(10)), $"{reader.Name} stayed blocked after the page was placed");
            }

            Assert.All(copies, copy => Assert.Equal(run.OriginPage(FakeSourceRun.Q), copy));
            Assert.Equal(1, run.RequestCount(FakeSourceRun.Q));

            MigrationStats final = run.Finish(alreadyPlaced: [FakeSourceRun.Q]);
            Assert.Equal(1, run.RequestCount(FakeSourceRun.Q));
            run.AssertEveryRequestWasOnceAndForADiscardedPage();
            Assert.True(final.PostcopyRequests >= 1);
            output.WriteLine($"destination: {final.PostcopyRequests} requests, {final.FaultCount} fault latencies, p50 {final.FaultLatencyP50Us:F0} us");
        }
        finally
        {
            if (readers.Any(r => r.IsAlive))
            {
                // Unregistering wakes the readers before the machine (and its RAM) goes away.
                run.Connection?.Abort();
                run.Destination?.Machine.Migration.Shutdown();
                foreach (Thread reader in readers)
                {
                    reader.Join(TimeSpan.FromSeconds(5));
                }
            }
        }
    }

    /// <summary>The latest Page record for each 4 KiB page, with the page's index inside the record.</summary>
    private static Dictionary<(int, ulong), (SeenRecord Record, int Index)> LatestPages(IEnumerable<SeenRecord> records)
    {
        var latest = new Dictionary<(int, ulong), (SeenRecord, int)>();
        foreach (SeenRecord record in records.Where(r => r.Type == RecordType.Page))
        {
            for (int i = 0; (ulong)i < Math.Max(1, record.Length / PageSize); i++)
            {
                latest[(record.Block, record.Offset + ((ulong)i * PageSize))] = (record, i);
            }
        }

        return latest;
    }

    private static void AssertHoldsSourceMemory(RamBlock block, SeenRecord page, string what)
    {
        ReadOnlySpan<byte> expected = block.GetSpan(page.Offset, (int)page.Length);
        bool same = page.Zero ? !expected.ContainsAnyExcept((byte)0) : expected.SequenceEqual(page.Data);
        Assert.True(same, $"{what}: the answer for 0x{page.Offset:x} differs from the source's memory");
    }

    private static void AssertImageIsSourceMemory(Dictionary<(int, ulong), (SeenRecord Record, int Index)> image, RamBlock[] blocks)
    {
        var problems = new List<string>();
        for (int index = 0; index < blocks.Length; index++)
        {
            RamBlock block = blocks[index];
            for (ulong offset = 0; offset < block.UsedLength; offset += PageSize)
            {
                if (!image.TryGetValue((index, offset), out var sent))
                {
                    problems.Add($"{block.Name}:0x{offset:x} never sent");
                    continue;
                }

                ReadOnlySpan<byte> expected = block.GetSpan(offset, (int)PageSize);
                bool same = sent.Record.Zero
                    ? !expected.ContainsAnyExcept((byte)0)
                    : expected.SequenceEqual(sent.Record.Data.AsSpan(sent.Index * (int)PageSize, (int)PageSize));
                if (!same)
                {
                    problems.Add($"{block.Name}:0x{offset:x} last sent in {sent.Record} differs from the source's memory");
                }
            }
        }

        Assert.True(problems.Count == 0, $"{problems.Count} pages wrong on the fake destination: {string.Join("; ", problems.Take(5))}");
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    /// <summary>
    /// A fake source in front of a real destination machine. The guest's content and vCPU/device state come from a
    /// real machine that ran the dirty guest and was paused (the origin); the fake sends precopy pages, a discard set,
    /// Listen, the state and Run, and answers page requests from the origin's memory on the return-path thread,
    /// except for pages it is told to hold back.
    /// </summary>
    private sealed class FakeSourceRun(string socketPath) : IDisposable
    {
        /// <summary>Discarded pages the guest touches on the destination: its faults are served on request.</summary>
        public static readonly ulong[] GuestPages = [.. new ulong[] { 0, 37, 1000, 2048, 4095 }.Select(i => (1ul << 20) + (i * PageSize))];

        /// <summary>A discarded page the guest never touches: the duplicate test's page.</summary>
        public const ulong P = (20 << 20) + 0x1000;

        /// <summary>A page the guest never touches and that stays valid from precopy.</summary>
        public const ulong N = (21 << 20) + 0x1000;

        /// <summary>A discarded page the guest never touches: the de-duplication test's page.</summary>
        public const ulong Q = (22 << 20) + 0x1000;

        /// <summary>More discarded pages the guest never touches, sent at the end.</summary>
        public static readonly ulong[] Tail = [.. Enumerable.Range(0, 8).Select(i => (24ul << 20) + ((ulong)i * PageSize))];

        private const int Block = 0;

        private readonly object writeGate = new();
        private readonly object requestGate = new();
        private readonly Dictionary<(int Block, ulong Offset), int> requests = [];
        private HashSet<ulong> held = [];
        private HashSet<ulong> discarded = [];
        private Socket? listener;
        private Task? incoming;
        private Exception? incomingError;
        private long pagesSent;

        public TestMachine? Origin { get; private set; }

        public TestMachine? Destination { get; private set; }

        public RamBlock? OriginRam { get; private set; }

        public RamBlock? DestinationRam { get; private set; }

        public MigrationConnection? Connection { get; private set; }

        public RecordLog? ReturnPath { get; private set; }

        /// <summary>
        /// Everything up to the destination's PostcopyRunning. With <paramref name="preDiscard"/> the discard set goes
        /// the way a real source sends it: all but <see cref="Tail"/> before a PostcopyDiscardSync that must be
        /// acknowledged, the tail (as if dirtied meanwhile) after it.
        /// </summary>
        public void Start(IReadOnlyCollection<ulong> discard, IReadOnlyCollection<ulong> held, bool preDiscard = false)
        {
            discarded = [.. discard];
            this.held = [.. held];

            Origin = TestMachine.Create(Memory, guest: "dirty-16m");
            Origin.Machine.Start();
            Origin.WaitForSerial(s => s.Contains('B'), "a pass on the origin");
            // Stopped the way a migration source stops its guest: the state then says it was running.
            var originMigratable = new MigratableMachine(Origin.Machine);
            Assert.True(originMigratable.StopForMigration());
            Assert.True(Origin.Machine.IsPaused);
            Assert.Single(Origin.Machine.Ram.Blocks);
            OriginRam = Origin.Machine.Ram.Blocks[Block];
            Assert.Equal(0ul, OriginRam.GuestBase);

            // Recognisable content where the guest never writes.
            Origin.Machine.Memory.Write(P, FakePeer.Pattern(0xA1));
            Origin.Machine.Memory.Write(N, FakePeer.Pattern(0xC5));
            Origin.Machine.Memory.Write(Q, FakePeer.Pattern(0xD3));
            for (int i = 0; i < Tail.Length; i++)
            {
                Origin.Machine.Memory.Write(Tail[i], FakePeer.Pattern((byte)(0xE0 + i)));
            }

            IReadOnlyList<StateSection> sections = originMigratable.SaveState();

            Destination = TestMachine.Create(Memory);
            DestinationRam = Destination.Machine.Ram.Blocks[Block];
            Destination.Machine.Migration.SetCapabilities(new MigrationCapabilities { PostcopyRam = true });
            Destination.Machine.SetStoppedState(RunState.InMigrate);
            listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{socketPath}"));
            incoming = Task.Run(() =>
            {
                try
                {
                    Destination.Machine.Migration.RunIncoming(listener);
                }
                catch (Exception e)
                {
                    incomingError = e;
                }
            });

            Connection = MigrationConnection.Connect(MigrationUri.Parse($"unix:{socketPath}"), TimeSpan.FromSeconds(10));
            ReturnPath = new RecordLog(Connection.Reader, "the destination's return path", onRecord: Serve);
            RecordWriter writer = Connection.Writer;
            lock (writeGate)
            {
                StreamHeader.Write(Connection.OutputStream);
                RamLayout.Of(Origin.Machine.Ram).Write(writer);
                writer.Flush();
            }

            ReturnPath.WaitFor(r => r.Type == RecordType.SetupAccepted, "SetupAccepted");
            Send(RecordType.PostcopyAdvise, [0, 0, 0, 0]); // flags: MISSING faults only
            ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyAdviseAccepted, "PostcopyAdviseAccepted");

            // Precopy: every page with data; the pages about to be discarded go with stale content, which must not survive.
            byte[] stale = FakePeer.Pattern(0x5A);
            for (ulong offset = 0; offset < OriginRam.UsedLength; offset += PageSize)
            {
                if (discarded.Contains(offset))
                {
                    SendPage(offset, stale, flush: false);
                }
                else if (OriginRam.GetSpan(offset, (int)PageSize).ContainsAnyExcept((byte)0))
                {
                    SendPage(offset, OriginRam.GetSpan(offset, (int)PageSize), flush: false);
                }
            }

            lock (writeGate)
            {
                var passEnd = writer.Begin(RecordType.PassEnd);
                passEnd.U32(1);
                passEnd.Commit();
                if (preDiscard)
                {
                    DiscardRecord.Write(writer, Block, [.. discarded.Where(o => !Tail.Contains(o)).Order().Select(o => (o, PageSize))]);
                    writer.Write(RecordType.PostcopyDiscardSync, []);
                    writer.Flush();
                    ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyDiscarded, "PostcopyDiscarded after the pre-discard");
                    DiscardRecord.Write(writer, Block, [.. discarded.Where(Tail.Contains).Order().Select(o => (o, PageSize))]);
                }
                else
                {
                    DiscardRecord.Write(writer, Block, [.. discarded.Order().Select(o => (o, PageSize))]);
                }

                writer.Write(RecordType.PostcopyListen, []);
                foreach (StateSection section in sections)
                {
                    section.Write(writer);
                }

                StreamSeal.Write(writer, RecordType.PostcopyRun);
                writer.Flush();
            }

            ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyRunning, "PostcopyRunning");
        }

        public byte[] OriginPage(ulong offset) => OriginRam!.GetSpan(offset, (int)PageSize).ToArray();

        /// <summary>Reads a destination page from native code: safe even if it were missing (the fault would wait in native code).</summary>
        public byte[] ReadDestination(ulong offset) => FakePeer.ReadNative(DestinationRam!.HostAddressOf(offset), (int)PageSize);

        public void Send(RecordType type, byte[]? payload = null)
        {
            lock (writeGate)
            {
                Connection!.Writer.Write(type, payload ?? []);
                Connection.Writer.Flush();
            }
        }

        public void SendPage(ulong offset, ReadOnlySpan<byte> data, bool flush = true)
        {
            lock (writeGate)
            {
                PageRecord.Write(Connection!.Writer, Block, offset, data);
                if (flush)
                {
                    Connection.Writer.Flush();
                }

                pagesSent++;
            }
        }

        /// <summary>One Page record for the pages from <paramref name="offset"/>: data, or zeros when <paramref name="data"/> is null.</summary>
        public void SendRun(ulong offset, ulong length, byte[]? data)
        {
            lock (writeGate)
            {
                if (data is null)
                {
                    PageRecord.WriteZeros(Connection!.Writer, Block, offset, length);
                }
                else
                {
                    PageRecord.WriteData(Connection!.Writer, Block, offset, data);
                }

                Connection.Writer.Flush();
                pagesSent += (long)(length / PageSize);
            }
        }

        /// <summary>Waits until the destination has processed every page record sent so far; returns its statistics then.</summary>
        public MigrationStats WaitProcessed(string what)
        {
            long target;
            lock (writeGate)
            {
                target = pagesSent;
            }

            DateTime deadline = DateTime.UtcNow.AddSeconds(10);
            while (true)
            {
                MigrationStats stats = Destination!.Machine.Migration.Stats!;
                if ((long)(stats.NormalPages + stats.DuplicatePages) >= target)
                {
                    return stats;
                }

                Assert.True(incoming is { IsCompleted: false }, $"the destination stopped while processing {what}: {incomingError?.Message ?? stats.ErrorDescription}");
                Assert.True(DateTime.UtcNow < deadline, $"the destination did not process {what}: {stats.NormalPages + stats.DuplicatePages} of {target} pages; {stats}");
                Thread.Sleep(1);
            }
        }

        public int RequestCount(ulong offset)
        {
            lock (requestGate)
            {
                return requests.GetValueOrDefault((Block, offset));
            }
        }

        /// <summary>
        /// Sends every discarded page not placed yet, waits for Complete, closes as a source does, and returns the
        /// destination's final statistics (it must have completed without error).
        /// </summary>
        public MigrationStats Finish(IReadOnlyCollection<ulong> alreadyPlaced)
        {
            foreach (ulong offset in discarded.Order().Where(o => !alreadyPlaced.Contains(o)))
            {
                SendPage(offset, OriginRam!.GetSpan(offset, (int)PageSize));
            }

            ReturnPath!.WaitFor(r => r.Type == RecordType.Complete, "Complete once every discarded page was sent");
            Connection!.Abort();
            Assert.True(incoming!.Wait(TimeSpan.FromSeconds(30)), "the destination did not finish after Complete");
            Assert.Null(incomingError);
            MigrationStats stats = Destination!.Machine.Migration.Stats!;
            Assert.Equal(MigrationStatus.Completed, stats.Status);
            Assert.Null(stats.ErrorDescription);
            Assert.Equal(RunState.Running, Destination.Machine.RunState);
            return stats;
        }

        /// <summary>The destination asks only for pages it lacks, and for each at most once.</summary>
        public void AssertEveryRequestWasOnceAndForADiscardedPage()
        {
            KeyValuePair<(int Block, ulong Offset), int>[] seen;
            lock (requestGate)
            {
                seen = [.. requests];
            }

            Assert.All(seen, r => Assert.True(r.Key.Block == Block && discarded.Contains(r.Key.Offset), $"request for {r.Key.Block}:0x{r.Key.Offset:x}, a page the destination has"));
            Assert.All(seen, r => Assert.True(r.Value == 1, $"{r.Value} requests for {r.Key.Block}:0x{r.Key.Offset:x}"));
        }

        /// <summary>Return-path thread: count every page request and answer it from the origin's memory unless held.</summary>
        private void Serve(SeenRecord record)
        {
            if (record.Type != RecordType.PageRequest)
            {
                return;
            }

            lock (requestGate)
            {
                requests[(record.Block, record.Offset)] = requests.GetValueOrDefault((record.Block, record.Offset)) + 1;
            }

            if (record.Block != Block || held.Contains(record.Offset) || record.Offset >= OriginRam!.UsedLength)
            {
                return;
            }

            SendPage(record.Offset, OriginRam.GetSpan(record.Offset, (int)PageSize));
        }

        public void Dispose()
        {
            Connection?.Abort();
            ReturnPath?.Dispose();
            incoming?.Wait(TimeSpan.FromSeconds(10));
            listener?.Dispose();
            Destination?.Dispose();
            Origin?.Dispose();
            Connection?.Dispose();
        }
    }
}
