using Vmm.Bench;

// vmm-bench [NAME...]: runs the named benchmarks (all when none is named) and prints one table each.
var benchmarks = new Dictionary<string, Action>(StringComparer.OrdinalIgnoreCase)
{
    ["exit-cost"] = ExitCostBenchmark.Run,
    ["cpu"] = CpuBenchmark.Run,
    ["interrupts"] = InterruptRateBenchmark.Run,

    // Each benchmark lives in its own file; add yours here with one line.
    ["precopy"] = PrecopyBenchmark.Run,
    ["demand-paging"] = DemandPagingBenchmark.Run,
    ["postcopy"] = PostcopyBenchmark.Run,
    ["postcopy-minor"] = PostcopyMinorBenchmark.Run,
    ["postcopy-cold"] = PostcopyColdBenchmark.Run,
    ["postcopy-tls"] = PostcopyTlsBenchmark.Run,
    ["postcopy-recovery"] = PostcopyRecoveryBenchmark.Run,
};

string[] selected = args.Length == 0 ? [.. benchmarks.Keys] : args;
foreach (string name in selected)
{
    if (!benchmarks.TryGetValue(name, out Action? run))
    {
        Console.Error.WriteLine($"unknown benchmark '{name}'; known: {string.Join(", ", benchmarks.Keys)}");
        return 2;
    }

    run();
}

return 0;
