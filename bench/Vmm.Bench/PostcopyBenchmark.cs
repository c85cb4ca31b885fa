using Vmm.Accelerator;
using Vmm.Machine;
using Vmm.Migration;

namespace Vmm.Bench;

/// <summary>
/// Postcopy of a running dirty-256m guest with 512 MiB of RAM (it dirties 256 MiB), switched to postcopy after
/// ~0.2 s of precopy, between two machines in this process over a Unix socket. Reports the medians of total time,
/// downtime (guest stopped here → running there), page requests, vCPU block time and fault latency p50/p99, next
/// to the same migration by two QEMU 7.2 processes on TCG (<see cref="QemuMigration"/>) in the same invocation.
/// Runs of the modes alternate (ABCD DCBA), for the ratios: the default (a preempt channel for the answers, the push
/// through the shared-memory ring, mostly-zero pages as sparse pages), the defaults with every page whole through the
/// ring (sparse-pages off), the push through the socket (postcopy-shared-memory off), and one connection for
/// everything (postcopy-preempt off: answers on the main connection, small push batches).
/// </summary>
public static class PostcopyBenchmark
{
    private const ulong Memory = 512ul << 20;
    private const int Runs = 5;
    private static readonly TimeSpan PrecopyFor = TimeSpan.FromMilliseconds(200);

    /// <summary>vmm's source guest runs 1.5 s before migrating (every page of its 256 MiB dirtied once); so does QEMU's.</summary>
    private static readonly TimeSpan QemuWarmUp = TimeSpan.FromMilliseconds(1500);

    /// <summary>What a run turns off.</summary>
    private enum Mode
    {
        /// <summary>The defaults: preempt channel, push through the shared ring.</summary>
        Ring,

        /// <summary>sparse-pages off: every page of the push whole, through the ring.</summary>
        Dense,

        /// <summary>postcopy-shared-memory off: the push goes through the main connection's socket.</summary>
        Socket,

        /// <summary>postcopy-preempt off (so no ring either): one connection.</summary>
        Single,

        /// <summary>Not vmm: two QEMU 7.2 processes on TCG, QEMU's defaults (one connection, no preempt channel).</summary>
        Qemu,
    }

    public static void Run()
    {
        string image = InProcessPostcopy.GuestImagePath("dirty-256m");
        using SelectedAccelerator selected = BenchAccelerator.Open();
        IAccelerator kvm = selected.Accelerator;
        Console.WriteLine($"postcopy: dirty-256m, {Memory >> 20} MiB RAM, postcopy after {PrecopyFor.TotalMilliseconds:F0} ms of precopy, {Runs} runs per mode, alternating ABCD DCBA, on {(kvm.Kind == AcceleratorKind.Kvm ? "KVM" : "the software CPU")}");
        Console.WriteLine("  run  mode    total ms  downtime us  requests  blocktime ms  mean stall us  p50 us   p99 us   max us  local");

        // The modes alternate run by run (a process gets faster as its code warms up, which would flatter whichever
        // mode ran last), and which goes first swaps every pair: in this process every other run is slower to switch
        // over (measured: the first of each pair had the higher downtime, whichever mode it was).
        string? qemuProblem = QemuTcg.Unavailable();
        if (qemuProblem is not null)
        {
            Console.WriteLine($"postcopy: no QEMU here ({qemuProblem}): vmm alone");
        }

        // POSTCOPY_BENCH_MODES=ring,qemu runs only those.
        string[]? only = Environment.GetEnvironmentVariable("POSTCOPY_BENCH_MODES")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Mode[] modes = [.. Enum.GetValues<Mode>().Where(m => (m != Mode.Qemu || qemuProblem is null) && (only is null || only.Contains(m.ToString(), StringComparer.OrdinalIgnoreCase)))];
        var results = modes.ToDictionary(mode => mode, _ => new List<Result>());
        for (int run = 0; run <= Runs; run++)
        {
            foreach (Mode mode in run % 2 == 0 ? modes : modes.Reverse())
            {
                Result result = mode == Mode.Qemu ? InQemu(image) : Once(kvm, image, mode);

                // Run 0 of each mode warms up the JIT and the page cache; it is not counted.
                if (run > 0)
                {
                    results[mode].Add(result);
                    Print($"{run,3}", mode, result);
                }
            }
        }

        Dictionary<Mode, Result> medians = modes.ToDictionary(mode => mode, mode => Median(results[mode]));
        foreach (Mode mode in modes)
        {
            Print("med", mode, medians[mode]);
        }

        if (!medians.TryGetValue(Mode.Ring, out Result? ring))
        {
            return;
        }

        if (medians.TryGetValue(Mode.Qemu, out Result? qemu))
        {
            Console.WriteLine($"  vmm (the defaults) vs QEMU 7.2 TCG, same invocation: total {ring.TotalMs / qemu.TotalMs:F2}x (goal <= 0.5x), downtime {ring.DowntimeUs / 1000.0:F2} ms vs {qemu.DowntimeUs / 1000.0:F0} ms (goal <= 1 ms), block time {ring.BlocktimeMs / Math.Max(qemu.BlocktimeMs, 0.001):F2}x");
        }

        if (medians.TryGetValue(Mode.Dense, out Result? dense))
        {
            PrintRatios("sparse pages on / off", ring, dense);
        }

        if (medians.TryGetValue(Mode.Socket, out Result? socket))
        {
            PrintRatios("shared ring / push through the socket", ring, socket);
        }

        if (medians.TryGetValue(Mode.Single, out Result? single))
        {
            PrintRatios("shared ring / one connection", ring, single);
        }
    }

    private static void PrintRatios(string what, Result a, Result b) => Console.WriteLine(
        $"  {what}: total {a.TotalMs / b.TotalMs:F2}x, block time {a.BlocktimeMs / Math.Max(b.BlocktimeMs, 0.001):F2}x, " +
        $"mean stall {a.MeanStallUs / Math.Max(b.MeanStallUs, 0.001):F2}x, downtime {a.DowntimeUs / (double)Math.Max(b.DowntimeUs, 1):F2}x");

    private static void Print(string run, Mode mode, Result r) => Console.WriteLine(
        $"  {run}  {mode.ToString().ToLowerInvariant(),-6}  {r.TotalMs,8:F0}  {r.DowntimeUs,11}  {r.Requests,8}  {r.BlocktimeMs,12:F1}  {r.MeanStallUs,13:F1}  {r.P50Us,6:F1}  {r.P99Us,7:F1}  {r.MaxUs,7:F0}  {r.LocalFaults,5}");

    private static Result Median(List<Result> results) => new(
        Stats.Median(results.Select(r => r.TotalMs)),
        (long)Stats.Median(results.Select(r => (double)r.DowntimeUs)),
        (ulong)Stats.Median(results.Select(r => (double)r.Requests)),
        Stats.Median(results.Select(r => r.BlocktimeMs)),
        Stats.Median(results.Select(r => r.MeanStallUs)),
        Stats.Median(results.Select(r => r.P50Us)),
        Stats.Median(results.Select(r => r.P99Us)),
        Stats.Median(results.Select(r => r.MaxUs)),
        (ulong)Stats.Median(results.Select(r => (double)r.LocalFaults)));

    /// <summary>QEMU reports no fault latencies or stall per request: those columns stay 0 in its rows.</summary>
    private static Result InQemu(string image)
    {
        QemuMigration.Result q = QemuMigration.Run(image, Memory >> 20, QemuWarmUp, PrecopyFor);
        double meanStall = q.Requests == 0 ? 0 : q.BlocktimeMs * 1000 / q.Requests;
        return new Result(q.TotalMs, (long)(q.DowntimeMs * 1000), q.Requests, q.BlocktimeMs, meanStall, 0, 0, 0, 0);
    }

    private static Result Once(IAccelerator kvm, string image, Mode mode)
    {
        // Let the guest dirty its 256 MiB once (every page has content) before migrating.
        (MigrationStats sent, MigrationStats received) = InProcessPostcopy.Migrate(
            kvm,
            "postcopy",
            image,
            new MachineConfig { MemorySize = Memory },
            warmUp: TimeSpan.FromMilliseconds(1500),
            new MigrationCapabilities { PostcopyRam = true, PostcopyPreempt = mode != Mode.Single, PostcopySharedMemory = mode is Mode.Ring or Mode.Dense, SparsePages = mode != Mode.Dense },
            new MigrationParameters(),
            untilSwitchover: _ => Thread.Sleep(PrecopyFor));
        double meanStall = received.FaultCount == 0 ? 0 : received.PostcopyBlocktimeMs * 1000 / received.FaultCount;
        return new Result(sent.TotalTimeMs, sent.DowntimeUs, received.PostcopyRequests, received.PostcopyBlocktimeMs, meanStall,
            received.FaultLatencyP50Us, received.FaultLatencyP99Us, received.FaultLatencyMaxUs, received.PostcopyLocalFaults);
    }

    private sealed record Result(double TotalMs, long DowntimeUs, ulong Requests, double BlocktimeMs, double MeanStallUs, double P50Us, double P99Us, double MaxUs, ulong LocalFaults);
}
