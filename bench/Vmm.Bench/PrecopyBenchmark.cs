using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Reflection;
using Serilog;
using Vmm.Devices;
using Vmm.Accelerator;
using Vmm.Linux;
using Vmm.Loading;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Bench;

/// <summary>
/// Precopy of a running dirty-16m guest (128 MiB of RAM, [1 MiB, 17 MiB) dirtied every 10–20 ms) between two
/// VirtualMachines in this process over a Unix socket, as PrecopyTests.Migrate does it: total time, downtime, setup
/// time, throughput and pages sent over several runs (medians, min–max), against the same migration by two QEMU 7.2
/// processes on TCG (<see cref="QemuMigration"/>), each with the xbzrle capability off and on (vmm's delta pages; QEMU's
/// XBZRLE, which QEMU only uses after its first full pass, so a migration that switches over after one pass sends no
/// delta there), the four configurations in an order reversed every round, in this invocation. Each run also times the phases (through a timing proxy around the machine interface migration drives) and checks that the
/// guest kept every byte (DESIGN §7). A few stream-only measurements at the end show the ceiling of the data path.
/// </summary>
public static class PrecopyBenchmark
{
    private const ulong Memory = 128 << 20;
    private const ulong DirtyBase = 1 << 20;
    private const ulong Dirtied = 16 << 20;
    private const int Runs = 7;
    private const int MaxWarmUpRounds = 12;
    private const int WarmUpQuietMethods = 50;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    /// <summary>QEMU's guest runs this long after its first output, about as long as vmm's three passes take.</summary>
    private static readonly TimeSpan QemuWarmUp = TimeSpan.FromMilliseconds(100);

    public static void Run()
    {
        string image = FindGuest("dirty-16m");
        using SelectedAccelerator selected = BenchAccelerator.Open();
        IAccelerator kvm = selected.Accelerator;
        ILogger log = new LoggerConfiguration().CreateLogger();

        string? qemuProblem = QemuTcg.Unavailable();
        if (qemuProblem is not null)
        {
            Console.WriteLine($"precopy: no QEMU here ({qemuProblem}): vmm alone");
        }

        var results = new List<Result>();
        var xbzrleResults = new List<Result>();
        var qemu = new List<QemuMigration.Result>();
        var qemuXbzrle = new List<QemuMigration.Result>();

        // Four configurations per round, vmm and QEMU each with xbzrle off and on, in an order that reverses every
        // round (A B C D, D C B A, …): whichever runs later in a round has the others' leftovers (page cache, CPU
        // frequency, the other engineers' load).
        var round = new List<Action>
        {
            () => results.Add(MigrateOnce(kvm, image, log)),
            () => xbzrleResults.Add(MigrateOnce(kvm, image, log, xbzrle: true)),
        };
        if (qemuProblem is null)
        {
            round.Add(() => qemu.Add(QemuMigration.Run(image, Memory >> 20, QemuWarmUp, postcopyAfter: null)));
            round.Add(() => qemuXbzrle.Add(QemuMigration.Run(image, Memory >> 20, QemuWarmUp, postcopyAfter: null, xbzrle: true)));
        }

        // Warm-up rounds, not counted: the JIT, first mappings, and tiering. This process is young, and .NET's tiered
        // compilation promotes its hot methods a few seconds in, in a batch whose background compiles and stub
        // patching stalled two runs' downtimes when one migration of each kind warmed up. So rounds go on until one
        // compiles fewer than WarmUpQuietMethods methods: the figures are steady state, and each run's downtime still
        // reports the JIT work inside it (Compare).
        int warmUpRounds = 0;
        long compiledBefore;
        do
        {
            compiledBefore = System.Runtime.JitInfo.GetCompiledMethodCount();
            foreach (Action run in warmUpRounds % 2 == 0 ? round : Enumerable.Reverse(round))
            {
                run();
            }

            warmUpRounds++;
        }
        while (warmUpRounds < MaxWarmUpRounds
            && (warmUpRounds < 2 || System.Runtime.JitInfo.GetCompiledMethodCount() - compiledBefore >= WarmUpQuietMethods));
        Console.WriteLine($"precopy: {warmUpRounds} warm-up rounds, the last compiling {System.Runtime.JitInfo.GetCompiledMethodCount() - compiledBefore} methods");
        results.Clear();
        xbzrleResults.Clear();
        qemu.Clear();
        qemuXbzrle.Clear();

        for (int i = 0; i < Runs; i++)
        {
            foreach (Action run in i % 2 == 0 ? round : Enumerable.Reverse(round))
            {
                run();
            }
        }

        string accelerator = selected.Accelerator.Kind == AcceleratorKind.Kvm ? "KVM" : "the software CPU";
        Report(results, qemu, accelerator, "xbzrle off");
        Report(xbzrleResults, qemu, accelerator, "xbzrle on");
        Compare(results, xbzrleResults, qemu, qemuXbzrle);
        if (Environment.GetEnvironmentVariable("PRECOPY_BENCH_TIMELINE") == "1")
        {
            foreach (Result result in results.Concat(xbzrleResults))
            {
                Console.WriteLine("    timeline:");
                result.Timeline.Dump(Console.Out);
            }
        }

        // The data path's diagnostics take longer than the runs; PRECOPY_BENCH_DIAGNOSTICS=0 leaves them out when
        // only the comparison with QEMU is wanted (repeated invocations on a busy host).
        if (Environment.GetEnvironmentVariable("PRECOPY_BENCH_DIAGNOSTICS") != "0")
        {
            Diagnostics(kvm, image, log);
        }
    }

    private sealed record Result(MigrationStats Stats, Timeline Timeline, bool Consistent, string? Problem);

    private static Result MigrateOnce(IAccelerator kvm, string image, ILogger log, bool stopped = false, bool xbzrle = false)
    {
        string dir = Directory.CreateTempSubdirectory("vmm-bench-").FullName;
        var config = new MachineConfig { MemorySize = Memory, RamBackend = RamBackend.Anonymous };
        var sourceSerial = new PassCounter();
        var destinationSerial = new PassCounter();
        try
        {
            using VirtualMachine source = VirtualMachine.Create(kvm, config, sourceSerial, log, TextWriter.Null);
            using VirtualMachine destination = VirtualMachine.Create(kvm, config, destinationSerial, log, TextWriter.Null);
            source.Load(GuestImage.Load(image, GuestImage.DefaultLoadAddress, Memory));
            source.Start();
            sourceSerial.WaitFor(3, "three passes on the source");
            if (stopped)
            {
                source.Stop(); // diagnostics: the same migration with no vCPU competing for the two cores
            }

            var timeline = new Timeline();
            var outgoing = new MigrationController(TimingProxy.Wrap(new MigratableMachine(source), timeline, "src"), log);
            var incoming = new MigrationController(TimingProxy.Wrap(new MigratableMachine(destination), timeline, "dst"), log);
            outgoing.PassCompleted += pass => timeline.Mark($"pass {pass} done");
            outgoing.SetCapabilities(outgoing.Capabilities with { Xbzrle = xbzrle });

            string uri = $"unix:{Path.Combine(dir, "m.sock")}";
            destination.SetStoppedState(RunState.InMigrate);
            using Socket listener = IncomingMigration.Listen(MigrationUri.Parse(uri));
            var receiving = Task.Factory.StartNew(() => incoming.RunIncoming(listener), TaskCreationOptions.LongRunning);

            timeline.Mark("migrate");
            var migration = outgoing.Migrate(uri);
            if (!migration.Completion.Wait(Bound) || !receiving.Wait(Bound))
            {
                throw new TimeoutException("precopy benchmark: the migration did not finish");
            }

            timeline.Mark("finished");
            MigrationStats stats = migration.Stats;
            if (stats.Status != MigrationStatus.Completed)
            {
                throw new InvalidOperationException($"precopy benchmark: migration {stats.Status.ToQmp()}: {stats.ErrorDescription}");
            }

            // The guest goes on over there, and has lost nothing. A guest stopped on the source arrives stopped.
            if (stopped)
            {
                destination.Continue();
            }

            destinationSerial.WaitFor(destinationSerial.Passes + 3, "three passes on the destination");
            destination.Pause();
            string? problem = CheckDirty(destination);
            return new Result(stats, timeline, problem is null, problem);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// The four configurations side by side: downtime and total time medians, and each vmm figure over each QEMU one
    /// (issue 15's goal: vmm's downtime at most half of QEMU's).
    /// </summary>
    private static void Compare(List<Result> off, List<Result> on, List<QemuMigration.Result> qemuOff, List<QemuMigration.Result> qemuOn)
    {
        static double Downtime(List<Result> r) => Stats.Median(r.Select(x => x.Stats.DowntimeUs / 1000.0));
        static double Total(List<Result> r) => Stats.Median(r.Select(x => (double)x.Stats.TotalTimeMs));
        Console.WriteLine("  comparison (medians; downtime ms / total ms):");
        Console.WriteLine($"    vmm  xbzrle off  {Downtime(off),7:F2} / {Total(off),6:F0}   runs {string.Join(" ", off.Select(r => $"{r.Stats.DowntimeUs / 1000.0:F1}/{r.Stats.TotalTimeMs}"))}");
        Console.WriteLine($"    vmm  xbzrle on   {Downtime(on),7:F2} / {Total(on),6:F0}   runs {string.Join(" ", on.Select(r => $"{r.Stats.DowntimeUs / 1000.0:F1}/{r.Stats.TotalTimeMs}"))}");
        foreach ((string name, List<Result> mine) in new[] { ("off", off), ("on ", on) })
        {
            var jit = mine.Select(r => r.Timeline.RuntimeBetween("src StopForMigration", "dst StartIncomingGuest")).ToList();
            Console.WriteLine($"         xbzrle {name}: JIT inside the downtime, per run (ms/methods, any thread): {string.Join(" ", jit.Select(j => $"{j.Ms:F1}/{j.Methods:F0}"))}; GC pauses (ms/count): {string.Join(" ", jit.Select(j => $"{j.GcMs:F1}/{j.Gcs:F0}"))}");
        }

        Console.WriteLine($"         xbzrle on: {Stats.Median(on.Select(r => (double)r.Stats.XbzrlePages)):F0} delta pages, {Stats.Median(on.Select(r => (double)r.Stats.XbzrleBytes)) / 1024:F1} KiB of delta data, {Stats.Median(on.Select(r => (double)r.Stats.XbzrleCacheMisses)):F0} cache misses, {Stats.Median(on.Select(r => (double)r.Stats.XbzrleOverflows)):F0} overflows, {Stats.Median(on.Select(r => (double)r.Stats.XbzrleUnchanged)):F0} unchanged (medians per migration)");
        if (qemuOff.Count == 0)
        {
            return;
        }

        double qemuOffDowntime = Stats.Median(qemuOff.Select(q => q.DowntimeMs));
        double qemuOffTotal = Stats.Median(qemuOff.Select(q => q.TotalMs));
        double qemuOnDowntime = Stats.Median(qemuOn.Select(q => q.DowntimeMs));
        double qemuOnTotal = Stats.Median(qemuOn.Select(q => q.TotalMs));
        Console.WriteLine($"    QEMU xbzrle off  {qemuOffDowntime,7:F2} / {qemuOffTotal,6:F0}   runs {string.Join(" ", qemuOff.Select(q => $"{q.DowntimeMs:F0}/{q.TotalMs:F0}"))}");
        Console.WriteLine($"    QEMU xbzrle on   {qemuOnDowntime,7:F2} / {qemuOnTotal,6:F0}   runs {string.Join(" ", qemuOn.Select(q => $"{q.DowntimeMs:F0}/{q.TotalMs:F0}"))}");
        Console.WriteLine($"         QEMU xbzrle on: {Stats.Median(qemuOn.Select(q => (double)q.XbzrlePages)):F0} delta pages, {Stats.Median(qemuOn.Select(q => (double)q.XbzrleBytes)) / 1024:F1} KiB of delta data (medians)");
        Console.WriteLine("    ratios vmm/QEMU (downtime, total; goal: downtime <= 0.50):");
        foreach ((string name, List<Result> mine) in new[] { ("vmm off", off), ("vmm on ", on) })
        {
            foreach ((string qemuName, double downtime, double total) in new[] { ("QEMU off", qemuOffDowntime, qemuOffTotal), ("QEMU on ", qemuOnDowntime, qemuOnTotal) })
            {
                double ratio = Downtime(mine) / downtime;
                Console.WriteLine($"      {name} / {qemuName}: downtime {ratio:F2} ({(ratio <= 0.5 ? "met" : "NOT met")}), total {Total(mine) / total:F2}");
            }
        }
    }

    private static void Report(List<Result> results, List<QemuMigration.Result> qemu, string accelerator, string label)
    {
        double Med(Func<Result, double> f) => Stats.Median(results.Select(f));
        string Spread(Func<Result, double> f, string format) => $"{results.Min(f).ToString(format)}–{results.Max(f).ToString(format)}";
        static double TotalMs(Result r) => r.Stats.TotalTimeMs;
        static double DowntimeUs(Result r) => r.Stats.DowntimeUs;
        static double SetupMs(Result r) => r.Stats.SetupTimeMs;
        static double MBps(Result r) => r.Stats.TransferredBytes / 1e6 / Math.Max(r.Stats.TotalTimeMs / 1000.0, 1e-3);
        static double Pages(Result r) => r.Stats.NormalPages + r.Stats.DuplicatePages;
        static double Passes(Result r) => r.Stats.Passes;
        static double GuestPauseUs(Result r) => r.Timeline.Between("src StopForMigration", "dst StartIncomingGuest", endOfSecond: true);

        Console.WriteLine($"precopy, {label}: running dirty-16m guest on {accelerator}, {Memory >> 20} MiB RAM ({Dirtied >> 20} MiB dirtied over and over), anonymous RAM, Unix socket, in-process, {Runs} runs after a warm-up");
        Console.WriteLine("  run   total ms  setup ms  downtime us  guest pause us  passes  sent MiB  pages sent (data/zero)  MB/s   consistent");
        for (int i = 0; i < results.Count; i++)
        {
            Result r = results[i];
            Console.WriteLine($"  {i + 1,3}   {TotalMs(r),8:F0}  {SetupMs(r),8:F0}  {DowntimeUs(r),11:F0}  {GuestPauseUs(r),14:F0}  {Passes(r),6:F0}  {r.Stats.TransferredBytes / 1048576.0,8:F1}  {Pages(r),10:F0} ({r.Stats.NormalPages}/{r.Stats.DuplicatePages})  {MBps(r),5:F0}   {(r.Consistent ? "yes" : "NO: " + r.Problem)}");
        }

        Console.WriteLine($"  median {Med(TotalMs),6:F0}  {Med(SetupMs),8:F0}  {Med(DowntimeUs),11:F0}  {Med(GuestPauseUs),14:F0}  {Med(Passes),6:F0}  {Stats.Median(results.Select(r => r.Stats.TransferredBytes / 1048576.0)),8:F1}  {Med(Pages),10:F0}               {Med(MBps),5:F0}");
        Console.WriteLine($"  spread (min–max): total {Spread(TotalMs, "F0")} ms, setup {Spread(SetupMs, "F0")} ms, downtime {Spread(DowntimeUs, "F0")} us, throughput {Spread(MBps, "F0")} MB/s, pages {Spread(Pages, "F0")}");
        if (qemu.Count > 0)
        {
            double qemuTotalMs = Stats.Median(qemu.Select(q => q.TotalMs));
            double qemuDowntimeMs = Stats.Median(qemu.Select(q => q.DowntimeMs));
            double totalRatio = Med(TotalMs) / qemuTotalMs;
            double downtimeRatio = Med(DowntimeUs) / 1000 / qemuDowntimeMs;
            Console.WriteLine($"  QEMU 7.2 TCG, same invocation: total {qemuTotalMs:F0} ms, downtime {qemuDowntimeMs:F0} ms (medians; runs: {string.Join(" ", qemu.Select(q => $"{q.TotalMs:F0}/{q.DowntimeMs:F0}"))})");
            Console.WriteLine($"  vmm/QEMU: total {totalRatio:F2}, downtime {downtimeRatio:F2} (goal <= 0.50 each: {(totalRatio <= 0.5 && downtimeRatio <= 0.5 ? "met" : "NOT met")})");
        }

        Console.WriteLine($"  consistency check (DESIGN §7) on the destination after every run: {(results.All(r => r.Consistent) ? "passed" : "FAILED")}");

        // Phases: medians over the runs, from the timing proxy's marks (µs).
        Console.WriteLine("  phases (median over runs, us; src = source migration thread, dst = destination):");
        var phases = new (string Name, Func<Timeline, double> Measure)[]
        {
            ("setup: connect, header, layout, SetupAccepted", t => t.Between("migrate", "src StartDirtyLogging")),
            ("start dirty logging (KVM memslot flags)", t => t.Duration("src StartDirtyLogging")),
            ("pass 1: every page once (live)", t => t.Between("src StartDirtyLogging", "src SyncDirtyLog", endOfFirst: true)),
            ("dirty sync after pass 1 (KVM_GET_DIRTY_LOG)", t => t.Duration("src SyncDirtyLog")),
            ("later live passes (sum)", t => t.LaterPasses()),
            ("decide, then stop the vCPUs", t => t.Between("src SyncDirtyLog", "src StopForMigration", endOfFirst: true, lastFirst: true) + t.Duration("src StopForMigration")),
            ("final dirty sync (guest stopped)", t => t.Duration("src SyncDirtyLog", last: true)),
            ("final pages sent (guest stopped)", t => t.Between("src SyncDirtyLog", "src SaveState", endOfFirst: true, lastFirst: true)),
            ("save vCPU + device state", t => t.Duration("src SaveState")),
            ("destination drains the backlog to End", t => t.Between("src SaveState", "dst LoadState", endOfFirst: true)),
            ("destination loads state", t => t.Duration("dst LoadState")),
            ("Complete back to the source", t => t.Between("dst LoadState", "src StopDirtyLogging", endOfFirst: true)),
            ("destination starts the guest (after Complete)", t => t.Duration("dst StartIncomingGuest")),
            ("source wrap-up (stop logging, postmigrate)", t => t.Between("src StopDirtyLogging", "finished")),
        };
        foreach ((string name, Func<Timeline, double> measure) in phases)
        {
            double[] values = [.. results.Select(r => measure(r.Timeline))];
            Console.WriteLine($"    {name,-48} {Stats.Median(values),9:F0}   ({values.Min():F0}–{values.Max():F0})");
        }
    }

    /// <summary>
    /// The data path alone: the cost of each step, then 16 MiB of page records through the same framing and
    /// buffering as MigrationConnection (BufferedStream of 1 MiB each way, RecordWriter/RecordReader, Unix socket),
    /// with no guest running and with a dirty guest running on one of the two cores (as during precopy), with the
    /// socket's default buffers and with 4 MiB ones, and with one record per page or per 64 contiguous pages.
    /// </summary>
    private static void Diagnostics(IAccelerator kvm, string image, ILogger log)
    {
        const int Rounds = 7;
        Console.WriteLine($"  diagnostics (median of {Rounds}):");
        byte[] page = new byte[4096];
        new Random(1).NextBytes(page);
        byte[] data = new byte[Dirtied];
        for (int i = 0; i < data.Length; i += page.Length)
        {
            page.CopyTo(data, i);
        }

        double Median(Func<double> measure) => Stats.Median(Enumerable.Range(0, Rounds).Select(_ => measure()));
        byte[] copyTarget = new byte[data.Length];
        double memcpy = Median(() => Time(() => data.AsSpan().CopyTo(copyTarget)));
        double crc = Median(() => Time(() => Crc32C.Compute(data)));
        byte[] zeros = new byte[Memory];
        double zeroScan = Median(() => Time(() =>
        {
            for (int i = 0; i < zeros.Length; i += 4096)
            {
                _ = zeros.AsSpan(i, 4096).ContainsAnyExcept((byte)0);
            }
        }));
        Console.WriteLine($"    memcpy 16 MiB (touched memory)                      {memcpy,9:F0} us   ({Dirtied / memcpy,5:F0} MB/s)");
        Console.WriteLine($"    CRC-32C over 16 MiB                                 {crc,9:F0} us   ({Dirtied / crc,5:F0} MB/s)");
        Console.WriteLine($"    zero-page test over 128 MiB of zeros                {zeroScan,9:F0} us");
        double untouched = Median(() => ScanAnonymous(touchFirst: false));
        double touchedScan = Median(() => ScanAnonymous(touchFirst: true));
        Console.WriteLine($"    zero-page test over 128 MiB never touched (mmap)    {untouched,9:F0} us   (first read of each page maps the zero page: a fault)");
        Console.WriteLine($"    zero-page test over the same 128 MiB, touched       {touchedScan,9:F0} us");

        var quiet = Enumerable.Range(0, 3).Select(_ => MigrateOnce(kvm, image, log, stopped: true)).ToList();
        Console.WriteLine($"    the same precopy with the source guest stopped (no vCPU competing), median of 3: total {Stats.Median(quiet.Select(r => (double)r.Stats.TotalTimeMs)):F0} ms, pass 1 {Stats.Median(quiet.Select(r => r.Timeline.Between("src StartDirtyLogging", "src SyncDirtyLog", endOfFirst: true))) / 1000:F1} ms, final pages {Stats.Median(quiet.Select(r => r.Timeline.Between("src SyncDirtyLog", "src SaveState", endOfFirst: true, lastFirst: true))) / 1000:F1} ms");
        Console.WriteLine("    16 MiB of page records, writer thread -> Unix socket -> reader thread (CRC both ends, copy into RAM),");
        Console.WriteLine($"    configurations interleaved round by round, {Rounds} rounds after a warm-up:");
        var idle = new (string What, bool Fresh, int Buffer, int Pages)[]
        {
            ("idle host, 1 page/record, into touched memory", false, 0, 1),
            ("idle host, 1 page/record, into fresh memory", true, 0, 1),
            ("idle host, 64 pages/record, into fresh memory", true, 0, 64),
        };
        var busy = new (string What, bool Fresh, int Buffer, int Pages)[]
        {
            ("guest running, 1 page/record, default buffer", true, 0, 1),
            ("guest running, 1 page/record, 4 MiB socket buffer", true, 4 << 20, 1),
            ("guest running, 64 pages/record, default buffer", true, 0, 64),
        };

        void Measure((string What, bool Fresh, int Buffer, int Pages)[] configurations)
        {
            foreach (var c in configurations)
            {
                StreamPass(data, c.Fresh, c.Buffer, c.Pages); // warm-up (JIT tiers)
            }

            var samples = configurations.Select(_ => new List<double>()).ToArray();
            for (int round = 0; round < Rounds; round++)
            {
                for (int i = 0; i < configurations.Length; i++)
                {
                    samples[i].Add(StreamPass(data, configurations[i].Fresh, configurations[i].Buffer, configurations[i].Pages));
                }
            }

            for (int i = 0; i < configurations.Length; i++)
            {
                double us = Stats.Median(samples[i]);
                Console.WriteLine($"      {configurations[i].What,-50} {us,9:F0} us   ({Dirtied / us,5:F0} MB/s; runs {samples[i].Min():F0}–{samples[i].Max():F0} us)");
            }
        }

        Measure(idle);

        // The same while a dirty guest keeps one core busy, as it does during the live passes.
        var serial = new PassCounter();
        using VirtualMachine guest = VirtualMachine.Create(kvm, new MachineConfig { MemorySize = Memory }, serial, log, TextWriter.Null);
        guest.Load(GuestImage.Load(image, GuestImage.DefaultLoadAddress, Memory));
        guest.Start();
        serial.WaitFor(1, "the busy guest");
        Measure(busy);
    }

    /// <summary>µs to zero-test every 4 KiB page of 128 MiB of fresh anonymous memory, untouched or written first.</summary>
    private static unsafe double ScanAnonymous(bool touchFirst)
    {
        nint memory = Mman.Map(0, Memory, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        try
        {
            var span = new Span<byte>((void*)memory, (int)Memory);
            if (touchFirst)
            {
                for (int i = 0; i < span.Length; i += 4096)
                {
                    span[i] = 0;
                }
            }

            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < span.Length; i += 4096)
            {
                if (span.Slice(i, 4096).ContainsAnyExcept((byte)0))
                {
                    throw new InvalidOperationException("fresh memory is not zero");
                }
            }

            return Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }
        finally
        {
            Mman.Unmap(memory, Memory);
        }
    }

    private static double Time(Action action)
    {
        long start = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    }

    /// <summary>µs to move 16 MiB of 4 KiB data pages from a writer thread to a reader thread the way migration does.</summary>
    private static unsafe double StreamPass(byte[] data, bool freshTarget, int socketBuffer, int pagesPerRecord)
    {
        string dir = Directory.CreateTempSubdirectory("vmm-bench-").FullName;
        nint target = Mman.Map(0, (ulong)data.Length, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        try
        {
            var memory = new Span<byte>((void*)target, data.Length);
            if (!freshTarget)
            {
                memory.Fill(1);
            }

            var endPoint = new UnixDomainSocketEndPoint(Path.Combine(dir, "s.sock"));
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(endPoint);
            listener.Listen(1);
            using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            if (socketBuffer > 0)
            {
                client.SendBufferSize = socketBuffer;
            }

            client.Connect(endPoint);
            using Socket server = listener.Accept();
            if (socketBuffer > 0)
            {
                server.ReceiveBufferSize = socketBuffer;
            }

            using var output = new BufferedStream(new NetworkStream(client, ownsSocket: false), 1 << 20);
            using var input = new BufferedStream(new NetworkStream(server, ownsSocket: false), 1 << 20);
            var writer = new RecordWriter(output);
            var reader = new RecordReader(input);
            long start = Stopwatch.GetTimestamp();
            var reading = Task.Factory.StartNew(
                () =>
                {
                    var into = new Span<byte>((void*)target, data.Length);
                    while (true)
                    {
                        Vmm.Migration.Stream.Record record = reader.Read();
                        if (record.Type == RecordType.End)
                        {
                            return;
                        }

                        PageRecord.Parsed parsed = PageRecord.Read(record);
                        parsed.Data.CopyTo(into.Slice((int)parsed.Offset, (int)parsed.Length));
                    }
                },
                TaskCreationOptions.LongRunning);
            int recordBytes = 4096 * pagesPerRecord;
            for (int offset = 0; offset < data.Length; offset += recordBytes)
            {
                PageRecord.Write(writer, 0, (ulong)offset, data.AsSpan(offset, recordBytes));
            }

            writer.Write(RecordType.End, []);
            writer.Flush();
            reading.GetAwaiter().GetResult();
            double us = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            if (!memory[^4096..].SequenceEqual(data.AsSpan(data.Length - 4096)))
            {
                throw new InvalidOperationException("stream diagnostic: the data did not arrive");
            }

            return us;
        }
        finally
        {
            Mman.Unmap(target, (ulong)data.Length);
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>DESIGN §7 over the first byte of each page of [1 MiB, 17 MiB); null when consistent.</summary>
    private static string? CheckDirty(VirtualMachine machine)
    {
        byte[] firsts = new byte[Dirtied / 4096];
        Span<byte> one = stackalloc byte[1];
        for (int i = 0; i < firsts.Length; i++)
        {
            machine.Memory.Read(DirtyBase + ((ulong)i * 4096), one);
            firsts[i] = one[0];
        }

        byte head = firsts[0];
        bool stepped = false;
        for (int i = 1; i < firsts.Length; i++)
        {
            byte expected = stepped ? unchecked((byte)(head - 1)) : head;
            if (firsts[i] == expected)
            {
                continue;
            }

            if (!stepped && firsts[i] == unchecked((byte)(head - 1)))
            {
                stepped = true;
                continue;
            }

            return $"page {i} holds {firsts[i]}, expected {expected}";
        }

        return null;
    }

    private static string FindGuest(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string path = Path.Combine(dir.FullName, "guests", "bin", $"{name}.bin");
            if (File.Exists(Path.Combine(dir.FullName, "Vmm.sln")))
            {
                return File.Exists(path) ? path : throw new FileNotFoundException($"guest image {path} is missing: run 'make guests'");
            }
        }

        throw new InvalidOperationException("cannot find the repository root (Vmm.sln) above " + AppContext.BaseDirectory);
    }

    /// <summary>Counts the dirty guest's passes (each prints B).</summary>
    private sealed class PassCounter : ISerialSink
    {
        private int passes;

        public int Passes => Volatile.Read(ref passes);

        public void Write(ReadOnlySpan<byte> bytes) => Interlocked.Add(ref passes, bytes.Count((byte)'B'));

        public void WaitFor(int count, string what)
        {
            var clock = Stopwatch.StartNew();
            while (Passes < count)
            {
                if (clock.Elapsed > Bound)
                {
                    throw new TimeoutException($"precopy benchmark: timed out waiting for {what}");
                }

                Thread.Sleep(1);
            }
        }
    }

    /// <summary>Timestamped marks and call durations, from any thread.</summary>
    internal sealed class Timeline
    {
        private readonly ConcurrentQueue<(string Name, long Start, long End)> entries = new();

        public void Mark(string name)
        {
            long now = Stopwatch.GetTimestamp();
            entries.Enqueue((name, now, now));
        }

        public void Add(string name, long start, long end) => entries.Enqueue((name, start, end));

        private readonly ConcurrentDictionary<string, (TimeSpan Time, long Methods, TimeSpan GcPause, int Gcs)> jit = new();

        /// <summary>The process's JIT compilation and GC pauses so far (every thread, tiering's background one too), under <paramref name="name"/>, once.</summary>
        public void MarkRuntime(string name) =>
            jit.TryAdd(name, (System.Runtime.JitInfo.GetCompilationTime(), System.Runtime.JitInfo.GetCompiledMethodCount(), GC.GetTotalPauseDuration(), GC.CollectionCount(0)));

        /// <summary>JIT time (ms), methods compiled, GC pause time (ms) and gen-0 collections between two <see cref="MarkRuntime"/> marks; NaN if either is missing.</summary>
        public (double Ms, double Methods, double GcMs, double Gcs) RuntimeBetween(string from, string to) =>
            jit.TryGetValue(from, out var a) && jit.TryGetValue(to, out var b)
                ? ((b.Time - a.Time).TotalMilliseconds, b.Methods - a.Methods, (b.GcPause - a.GcPause).TotalMilliseconds, b.Gcs - a.Gcs)
                : (double.NaN, double.NaN, double.NaN, double.NaN);

        /// <summary>Every mark and call, relative to the first, one line each (PRECOPY_BENCH_TIMELINE=1).</summary>
        public void Dump(TextWriter output)
        {
            var all = entries.OrderBy(e => e.Start).ToArray();
            long origin = all[0].Start;
            foreach ((string name, long start, long end) in all)
            {
                output.WriteLine($"      {Us(origin, start),10:F0} us  +{Us(start, end),8:F0} us  {name}");
            }
        }

        private (string Name, long Start, long End)[] All(string name) => [.. entries.Where(e => e.Name == name).OrderBy(e => e.Start)];

        private static double Us(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalMicroseconds;

        public double Duration(string name, bool last = false)
        {
            var all = All(name);
            if (all.Length == 0)
            {
                return double.NaN;
            }

            var e = last ? all[^1] : all[0];
            return Us(e.Start, e.End);
        }

        /// <summary>From the first (or last) <paramref name="first"/> to the first <paramref name="second"/> after it.</summary>
        public double Between(string first, string second, bool endOfFirst = false, bool lastFirst = false, bool endOfSecond = false)
        {
            var a = All(first);
            if (a.Length == 0)
            {
                return double.NaN;
            }

            (string _, long aStart, long aEnd) = a[0];
            if (lastFirst)
            {
                // The last occurrence of `first` before `second` (e.g. the last live sync before the stop).
                var b0 = All(second);
                var candidates = b0.Length == 0 ? a : a.Where(x => x.Start < b0[0].Start).ToArray();
                if (candidates.Length == 0)
                {
                    return double.NaN;
                }

                (_, aStart, aEnd) = candidates[^1];
            }

            long from = endOfFirst ? aEnd : aStart;
            var b = All(second).Where(x => x.Start >= from).ToArray();
            if (b.Length == 0)
            {
                return double.NaN;
            }

            return Us(from, endOfSecond ? b[0].End : b[0].Start);
        }

        /// <summary>Sum of the live passes after the first: from the end of each live sync to the start of the next one.</summary>
        public double LaterPasses()
        {
            var stop = All("src StopForMigration");
            var syncs = All("src SyncDirtyLog").Where(s => stop.Length == 0 || s.Start < stop[0].Start).ToArray();
            double sum = 0;
            for (int i = 1; i < syncs.Length; i++)
            {
                sum += Us(syncs[i - 1].End, syncs[i].Start);
            }

            return sum;
        }
    }

    /// <summary>
    /// A proxy for <see cref="IMigratableMachine"/> that forwards every call to the real machine and records its
    /// start and end; being generic, it keeps working as the interface grows.
    /// </summary>
    public class TimingProxy : DispatchProxy
    {
        private object inner = null!;
        private Timeline timeline = null!;
        private string side = "";

        internal static IMigratableMachine Wrap(IMigratableMachine machine, Timeline timeline, string side)
        {
            IMigratableMachine proxy = Create<IMigratableMachine, TimingProxy>();
            var self = (TimingProxy)(object)proxy;
            self.inner = machine;
            self.timeline = timeline;
            self.side = side;
            return proxy;
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            long start = Stopwatch.GetTimestamp();
            if (targetMethod!.Name is "StopForMigration" or "StartIncomingGuest")
            {
                // The downtime's bounds: how much the JIT compiled inside it (tiering's rejits compete for the cores).
                timeline.MarkRuntime($"{side} {targetMethod.Name}");
            }

            try
            {
                return targetMethod!.Invoke(inner, args);
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
                throw;
            }
            finally
            {
                if (!targetMethod!.IsSpecialName)
                {
                    timeline.Add($"{side} {targetMethod.Name}", start, Stopwatch.GetTimestamp());
                }
            }
        }
    }
}
