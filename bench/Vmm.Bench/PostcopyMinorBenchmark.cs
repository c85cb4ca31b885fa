using Vmm.Accelerator;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Ram;

namespace Vmm.Bench;

/// <summary>
/// MINOR-fault postcopy against MISSING-only postcopy (issue 7): a running dirty-32m guest with 512 MiB of shared
/// RAM (it dirties 32 MiB), three precopy passes, then postcopy; runs alternate between minor faults on and off.
/// Reports the medians of page requests, vCPU block time, faults and local CONTINUEs, stale pages and downtime.
/// </summary>
public static class PostcopyMinorBenchmark
{
    private const ulong Memory = 512ul << 20;
    private const int Runs = 5;
    private const int PrecopyPasses = 3;

    public static void Run()
    {
        string image = InProcessPostcopy.GuestImagePath("dirty-32m");
        using SelectedAccelerator selected = BenchAccelerator.Open();
        IAccelerator kvm = selected.Accelerator;
        var results = new Dictionary<bool, List<Result>> { [true] = [], [false] = [] };
        Console.WriteLine($"postcopy-minor: dirty-32m, {Memory >> 20} MiB shared RAM, postcopy after {PrecopyPasses} precopy passes, {Runs} runs per mode");
        Console.WriteLine("  run  minor  requests  blocktime ms  faults  continue  stale pages  downtime us  total ms");
        for (int run = 0; run <= Runs; run++)
        {
            foreach (bool minor in new[] { true, false })
            {
                Result result = Once(kvm, image, minor);

                // Run 0 warms up the JIT and the page cache; it is not counted.
                if (run == 0)
                {
                    continue;
                }

                results[minor].Add(result);
                Print($"{run,3}", result);
            }
        }

        Result on = Median(results[true]);
        Result off = Median(results[false]);
        Print("med", on);
        Print("med", off);
        Console.WriteLine(
            $"  minor faults off/on: requests {Ratio(off.Requests, on.Requests)}, block time {Ratio(off.BlocktimeMs, on.BlocktimeMs)}, downtime {Ratio(off.DowntimeUs, on.DowntimeUs)} (goal: requests >= 10x, block time >= 5x)");
    }

    private static string Ratio(double off, double on) => on == 0 ? (off == 0 ? "1.0x (both 0)" : "inf (on = 0)") : $"{off / on:F1}x";

    private static void Print(string label, Result r) => Console.WriteLine(
        $"  {label}  {(r.Minor ? "on" : "off"),5}  {r.Requests,8:F0}  {r.BlocktimeMs,12:F1}  {r.Faults,6:F0}  {r.Continues,8:F0}  {r.StalePages,11:F0}  {r.DowntimeUs,11:F0}  {r.TotalMs,8:F0}");

    private static Result Median(List<Result> runs) => new(
        runs[0].Minor,
        Stats.Median(runs.Select(r => r.Requests)),
        Stats.Median(runs.Select(r => r.BlocktimeMs)),
        Stats.Median(runs.Select(r => r.Faults)),
        Stats.Median(runs.Select(r => r.Continues)),
        Stats.Median(runs.Select(r => r.StalePages)),
        Stats.Median(runs.Select(r => r.DowntimeUs)),
        Stats.Median(runs.Select(r => r.TotalMs)));

    private static Result Once(IAccelerator kvm, string image, bool minor)
    {
        // Never converge on its own: the switchover is ours, after a long precopy phase.
        (MigrationStats sent, MigrationStats received) = InProcessPostcopy.Migrate(
            kvm,
            "postcopy-minor",
            image,
            new MachineConfig { MemorySize = Memory, RamBackend = RamBackend.Shared },
            warmUp: TimeSpan.FromMilliseconds(500),
            new MigrationCapabilities { PostcopyRam = true, PostcopyMinorFaults = minor },
            new MigrationParameters { DowntimeLimitMs = 0, MaxPasses = 10_000 },
            untilSwitchover: migration =>
            {
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (migration.Stats.Passes < PrecopyPasses && DateTime.UtcNow < deadline)
                {
                    Thread.Sleep(5);
                }
            });

        if ((received.PostcopyMinorBlocks > 0) != minor)
        {
            throw new InvalidOperationException($"postcopy-minor benchmark: asked for minor faults {(minor ? "on" : "off")}, the destination used them on {received.PostcopyMinorBlocks} blocks");
        }

        return new Result(minor, received.PostcopyRequests, received.PostcopyBlocktimeMs, received.FaultCount, received.PostcopyContinuePages,
            received.PostcopyStalePages, sent.DowntimeUs, sent.TotalTimeMs);
    }

    private sealed record Result(bool Minor, double Requests, double BlocktimeMs, double Faults, double Continues, double StalePages, double DowntimeUs, double TotalMs);
}
