using Vmm.Kvm;
using Vmm.Machine;
using Vmm.Migration;

namespace Vmm.Bench;

/// <summary>
/// Postcopy of a running dirty-256m guest with 512 MiB of RAM (it dirties 256 MiB), switched to postcopy after
/// ~0.2 s of precopy, between two machines in this process over a Unix socket. Reports the medians of total time,
/// downtime (guest stopped here → running there), page requests, vCPU block time and fault latency p50/p99, next
/// to QEMU 7.2 on this machine (~0.7–0.8 s total, ~6 ms downtime, mean stall ~150–350 µs per requested page).
/// Then the same with postcopy-preempt off (answers on the main connection, small push batches), for the ratio.
/// </summary>
public static class PostcopyBenchmark
{
    private const ulong Memory = 512ul << 20;
    private const int Runs = 5;
    private static readonly TimeSpan PrecopyFor = TimeSpan.FromMilliseconds(200);

    public static void Run()
    {
        string image = InProcessPostcopy.GuestImagePath("dirty-256m");
        using KvmSystem kvm = KvmSystem.Open();
        Console.WriteLine($"postcopy: dirty-256m, {Memory >> 20} MiB RAM, postcopy after {PrecopyFor.TotalMilliseconds:F0} ms of precopy, {Runs} runs");
        Result preempt = RunAll(kvm, image, preempt: true);
        Console.WriteLine($"  vs QEMU 7.2: total {preempt.TotalMs / 750:P0} of ~750 ms (goal <= 50%), downtime {preempt.DowntimeUs / 6000.0:P0} of ~6 ms (goal <= 1 ms), mean stall {preempt.MeanStallUs / 250:P0} of ~250 us (goal <= 50%)");
        Result single = RunAll(kvm, image, preempt: false);
        Console.WriteLine(
            $"  preempt channel on/off: total {preempt.TotalMs / single.TotalMs:F2}x, block time {preempt.BlocktimeMs / Math.Max(single.BlocktimeMs, 0.001):F2}x, " +
            $"mean stall {preempt.MeanStallUs / Math.Max(single.MeanStallUs, 0.001):F2}x, downtime {preempt.DowntimeUs / (double)Math.Max(single.DowntimeUs, 1):F2}x");
    }

    /// <summary>One warm-up run and <see cref="Runs"/> measured ones; prints them and returns the medians.</summary>
    private static Result RunAll(KvmSystem kvm, string image, bool preempt)
    {
        var results = new List<Result>();
        Console.WriteLine($"  postcopy-preempt {(preempt ? "on (the default)" : "off")}:");
        Console.WriteLine("  run  total ms  downtime us  requests  blocktime ms  mean stall us  p50 us   p99 us   max us  local");
        for (int run = 0; run <= Runs; run++)
        {
            Result result = Once(kvm, image, preempt);

            // Run 0 warms up the JIT and the page cache; it is not counted.
            if (run == 0)
            {
                continue;
            }

            results.Add(result);
            Console.WriteLine(
                $"  {run,3}  {result.TotalMs,8:F0}  {result.DowntimeUs,11}  {result.Requests,8}  {result.BlocktimeMs,12:F1}  {result.MeanStallUs,13:F1}  {result.P50Us,6:F1}  {result.P99Us,7:F1}  {result.MaxUs,7:F0}  {result.LocalFaults,5}");
        }

        Result median = new(
            Stats.Median(results.Select(r => r.TotalMs)),
            (long)Stats.Median(results.Select(r => (double)r.DowntimeUs)),
            (ulong)Stats.Median(results.Select(r => (double)r.Requests)),
            Stats.Median(results.Select(r => r.BlocktimeMs)),
            Stats.Median(results.Select(r => r.MeanStallUs)),
            Stats.Median(results.Select(r => r.P50Us)),
            Stats.Median(results.Select(r => r.P99Us)),
            Stats.Median(results.Select(r => r.MaxUs)),
            (ulong)Stats.Median(results.Select(r => (double)r.LocalFaults)));
        Console.WriteLine(
            $"  med  {median.TotalMs,8:F0}  {median.DowntimeUs,11}  {median.Requests,8}  {median.BlocktimeMs,12:F1}  {median.MeanStallUs,13:F1}  {median.P50Us,6:F1}  {median.P99Us,7:F1}  {median.MaxUs,7:F0}  {median.LocalFaults,5}");
        return median;
    }

    private static Result Once(KvmSystem kvm, string image, bool preempt)
    {
        // Let the guest dirty its 256 MiB once (every page has content) before migrating.
        (MigrationStats sent, MigrationStats received) = InProcessPostcopy.Migrate(
            kvm,
            "postcopy",
            image,
            new MachineConfig { MemorySize = Memory },
            warmUp: TimeSpan.FromMilliseconds(1500),
            new MigrationCapabilities { PostcopyRam = true, PostcopyPreempt = preempt },
            new MigrationParameters(),
            untilSwitchover: _ => Thread.Sleep(PrecopyFor));
        double meanStall = received.FaultCount == 0 ? 0 : received.PostcopyBlocktimeMs * 1000 / received.FaultCount;
        return new Result(sent.TotalTimeMs, sent.DowntimeUs, received.PostcopyRequests, received.PostcopyBlocktimeMs, meanStall,
            received.FaultLatencyP50Us, received.FaultLatencyP99Us, received.FaultLatencyMaxUs, received.PostcopyLocalFaults);
    }

    private sealed record Result(double TotalMs, long DowntimeUs, ulong Requests, double BlocktimeMs, double MeanStallUs, double P50Us, double P99Us, double MaxUs, ulong LocalFaults);
}
