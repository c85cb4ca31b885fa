using System.Net;
using System.Net.Sockets;
using Serilog;
using Serilog.Events;
using Vmm.Accelerator;
using Vmm.Loading;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Source;

namespace Vmm.Bench;

/// <summary>
/// The postcopy benchmark's workload (dirty-256m, 512 MiB, postcopy after 0.2 s of precopy) over TCP on loopback, with
/// TLS on and off (issue 18). Under TLS there is no preempt channel (the answers share the main connection), so TLS is
/// compared both with plain TCP as configured by default (a preempt channel) and with plain TCP on one connection
/// (postcopy-preempt off) — the latter isolates what the encryption costs. Modes alternate (ABC CBA); medians.
/// </summary>
public static class PostcopyTlsBenchmark
{
    private const ulong Memory = 512ul << 20;
    private const int Runs = 5;
    private static readonly TimeSpan PrecopyFor = TimeSpan.FromMilliseconds(200);

    private enum Mode
    {
        /// <summary>Plain TCP, the defaults (preempt channel).</summary>
        Plain,

        /// <summary>Plain TCP, postcopy-preempt off: one connection, as under TLS.</summary>
        PlainSingle,

        /// <summary>TLS (tls-creds on both sides): one connection.</summary>
        Tls,
    }

    public static void Run()
    {
        string image = InProcessPostcopy.GuestImagePath("dirty-256m");
        string creds = BenchCertificates.Create(Path.Combine(Path.GetTempPath(), $"vmm-bench-pki-{Environment.ProcessId}"));
        using SelectedAccelerator selected = BenchAccelerator.Open();
        Console.WriteLine($"postcopy-tls: dirty-256m, {Memory >> 20} MiB RAM over TCP loopback, postcopy after {PrecopyFor.TotalMilliseconds:F0} ms of precopy, {Runs} runs per mode, alternating ABC CBA");
        Console.WriteLine("  run  mode          total ms  downtime us  requests  blocktime ms  transferred MiB");
        Mode[] modes = Enum.GetValues<Mode>();
        var results = modes.ToDictionary(mode => mode, _ => new List<(double TotalMs, double DowntimeUs, double Requests, double BlocktimeMs, double Mib)>());
        for (int run = 0; run <= Runs; run++)
        {
            foreach (Mode mode in run % 2 == 0 ? modes : modes.Reverse())
            {
                var r = Once(selected.Accelerator, image, mode, creds);
                if (run > 0)
                {
                    results[mode].Add(r);
                    Console.WriteLine($"  {run,3}  {Name(mode),-12}  {r.TotalMs,8:F0}  {r.DowntimeUs,11:F0}  {r.Requests,8:F0}  {r.BlocktimeMs,12:F1}  {r.Mib,15:F0}");
                }
            }
        }

        var medians = modes.ToDictionary(
            mode => mode,
            mode => (
                TotalMs: Stats.Median(results[mode].Select(r => r.TotalMs)),
                DowntimeUs: Stats.Median(results[mode].Select(r => r.DowntimeUs)),
                Requests: Stats.Median(results[mode].Select(r => r.Requests)),
                BlocktimeMs: Stats.Median(results[mode].Select(r => r.BlocktimeMs))));
        foreach (Mode mode in modes)
        {
            var m = medians[mode];
            Console.WriteLine($"  med  {Name(mode),-12}  {m.TotalMs,8:F0}  {m.DowntimeUs,11:F0}  {m.Requests,8:F0}  {m.BlocktimeMs,12:F1}");
        }

        var tls = medians[Mode.Tls];
        foreach (Mode plain in new[] { Mode.PlainSingle, Mode.Plain })
        {
            var p = medians[plain];
            Console.WriteLine($"  tls / {Name(plain)}: total {tls.TotalMs / p.TotalMs:F2}x, downtime {tls.DowntimeUs / Math.Max(p.DowntimeUs, 1):F2}x, block time {tls.BlocktimeMs / Math.Max(p.BlocktimeMs, 0.001):F2}x");
        }

        Directory.Delete(creds, recursive: true);
    }

    private static string Name(Mode mode) => mode switch
    {
        Mode.Plain => "plain",
        Mode.PlainSingle => "plain-single",
        _ => "tls",
    };

    private static (double TotalMs, double DowntimeUs, double Requests, double BlocktimeMs, double Mib) Once(IAccelerator accelerator, string image, Mode mode, string creds)
    {
        ILogger log = new LoggerConfiguration().MinimumLevel.Is(LogEventLevel.Warning).WriteTo.Console(standardErrorFromLevel: LogEventLevel.Verbose).CreateLogger();
        var config = new MachineConfig { MemorySize = Memory };
        var sink = new NullSerialSink();
        using VirtualMachine source = VirtualMachine.Create(accelerator, config, sink, log, TextWriter.Null);
        using VirtualMachine destination = VirtualMachine.Create(accelerator, config, sink, log, TextWriter.Null);
        source.Load(GuestImage.Load(image, GuestImage.DefaultLoadAddress, config.MemorySize));
        source.Start();
        Thread.Sleep(TimeSpan.FromMilliseconds(1500));

        var capabilities = new MigrationCapabilities { PostcopyRam = true, PostcopyPreempt = mode == Mode.Plain };
        MigrationTls? tls = mode == Mode.Tls ? new MigrationTls(creds, "localhost", []) : null;
        source.Migration.SetCapabilities(capabilities);
        destination.Migration.SetCapabilities(capabilities);
        source.Migration.SetParameters(new MigrationParameters { Tls = tls });
        destination.Migration.SetParameters(new MigrationParameters { Tls = tls });
        destination.SetStoppedState(RunState.InMigrate);
        int port;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            port = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }

        string uri = $"tcp:127.0.0.1:{port}";
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse(uri));
        var incoming = Task.Run(() => destination.Migration.RunIncoming(listener));
        MigrationSource migration = source.Migration.Migrate(uri);
        Thread.Sleep(PrecopyFor);
        source.Migration.StartPostcopy();
        if (!migration.Completion.Wait(TimeSpan.FromSeconds(120)) || !incoming.Wait(TimeSpan.FromSeconds(30)))
        {
            throw new TimeoutException($"postcopy-tls benchmark: the migration did not finish. source: {migration.Stats}; destination: {destination.Migration.Stats}");
        }

        MigrationStats sent = migration.Stats;
        MigrationStats received = destination.Migration.Stats!;
        if (sent.Status != MigrationStatus.Completed || received.Status != MigrationStatus.Completed)
        {
            throw new InvalidOperationException($"postcopy-tls benchmark: {sent.Status} / {received.Status}: {sent.ErrorDescription ?? received.ErrorDescription}");
        }

        return (sent.TotalTimeMs, sent.DowntimeUs, received.PostcopyRequests, received.PostcopyBlocktimeMs, sent.TransferredBytes / 1048576.0);
    }
}
