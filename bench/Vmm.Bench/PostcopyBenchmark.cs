using System.Diagnostics;
using System.Net.Sockets;
using Serilog;
using Vmm.Devices;
using Vmm.Kvm;
using Vmm.Loading;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Source;

namespace Vmm.Bench;

/// <summary>
/// Postcopy of a running dirty-256m guest with 512 MiB of RAM (it dirties 256 MiB), switched to postcopy after
/// ~0.2 s of precopy, between two machines in this process over a Unix socket. Reports the medians of total time,
/// downtime (guest stopped here → running there), page requests, vCPU block time and fault latency p50/p99, next
/// to QEMU 7.2 on this machine (~0.7–0.8 s total, ~6 ms downtime, mean stall ~150–350 µs per requested page).
/// </summary>
public static class PostcopyBenchmark
{
    private const ulong Memory = 512ul << 20;
    private const int Runs = 5;
    private static readonly TimeSpan PrecopyFor = TimeSpan.FromMilliseconds(200);

    public static void Run()
    {
        string image = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "guests", "bin", "dirty-256m.bin");
        image = Path.GetFullPath(File.Exists(image) ? image : Path.Combine("guests", "bin", "dirty-256m.bin"));
        using KvmSystem kvm = KvmSystem.Open();
        var results = new List<Result>();
        Console.WriteLine($"postcopy: dirty-256m, {Memory >> 20} MiB RAM, postcopy after {PrecopyFor.TotalMilliseconds:F0} ms of precopy, {Runs} runs");
        Console.WriteLine("  run  total ms  downtime us  requests  blocktime ms  mean stall us  p50 us   p99 us   max us  local");
        for (int run = 0; run <= Runs; run++)
        {
            Result result = Once(kvm, image);

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
        Console.WriteLine($"  vs QEMU 7.2: total {median.TotalMs / 750:P0} of ~750 ms (goal <= 50%), downtime {median.DowntimeUs / 6000.0:P0} of ~6 ms (goal <= 1 ms), mean stall {median.MeanStallUs / 250:P0} of ~250 us (goal <= 50%)");
    }

    private static Result Once(KvmSystem kvm, string image)
    {
        // VMM_BENCH_DEBUG=1 shows the VMM's debug log (switchover phases, fault thread) next to the table.
        ILogger log = new LoggerConfiguration().MinimumLevel.Is(Environment.GetEnvironmentVariable("VMM_BENCH_DEBUG") == "1" ? Serilog.Events.LogEventLevel.Debug : Serilog.Events.LogEventLevel.Warning).WriteTo.Console(standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose).CreateLogger();
        var sink = new NullSink();
        using VirtualMachine source = VirtualMachine.Create(kvm, new MachineConfig { MemorySize = Memory }, sink, log, TextWriter.Null);
        using VirtualMachine destination = VirtualMachine.Create(kvm, new MachineConfig { MemorySize = Memory }, sink, log, TextWriter.Null);
        source.Load(GuestImage.Load(image, GuestImage.DefaultLoadAddress, Memory));
        source.Start();

        // Let the guest dirty its 256 MiB once (every page has content) before migrating.
        Thread.Sleep(1500);

        var capabilities = new MigrationCapabilities { PostcopyRam = true };
        source.Migration.SetCapabilities(capabilities);
        destination.Migration.SetCapabilities(capabilities);
        destination.SetStoppedState(RunState.InMigrate);
        string socket = Path.Combine(Path.GetTempPath(), $"vmm-bench-postcopy-{Environment.ProcessId}.sock");
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{socket}"));
        var incoming = Task.Run(() => destination.Migration.RunIncoming(listener));

        MigrationSource migration = source.Migration.Migrate($"unix:{socket}");
        Thread.Sleep(PrecopyFor);
        source.Migration.StartPostcopy();
        if (!migration.Completion.Wait(TimeSpan.FromSeconds(60)) || !incoming.Wait(TimeSpan.FromSeconds(30)))
        {
            throw new TimeoutException($"postcopy benchmark: the migration did not finish. source: {migration.Stats}; destination: {destination.Migration.Stats}");
        }

        MigrationStats sent = migration.Stats;
        MigrationStats received = destination.Migration.Stats!;
        if (sent.Status != MigrationStatus.Completed || received.Status != MigrationStatus.Completed)
        {
            throw new InvalidOperationException($"postcopy benchmark: {sent.Status} / {received.Status}: {sent.ErrorDescription ?? received.ErrorDescription}");
        }

        File.Delete(socket);
        double meanStall = received.FaultCount == 0 ? 0 : received.PostcopyBlocktimeMs * 1000 / received.FaultCount;
        return new Result(sent.TotalTimeMs, sent.DowntimeUs, received.PostcopyRequests, received.PostcopyBlocktimeMs, meanStall,
            received.FaultLatencyP50Us, received.FaultLatencyP99Us, received.FaultLatencyMaxUs, received.PostcopyLocalFaults);
    }

    private sealed record Result(double TotalMs, long DowntimeUs, ulong Requests, double BlocktimeMs, double MeanStallUs, double P50Us, double P99Us, double MaxUs, ulong LocalFaults);

    private sealed class NullSink : ISerialSink
    {
        public void Write(ReadOnlySpan<byte> bytes)
        {
        }
    }
}
