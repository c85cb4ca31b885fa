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
/// What the postcopy benchmarks share: two machines in this process, the source running a guest, one postcopy
/// migration between them over a Unix socket, and both sides' final statistics (or an exception if it failed).
/// </summary>
internal static class InProcessPostcopy
{
    /// <summary>guests/bin/NAME.bin, found from the build output or the current directory.</summary>
    public static string GuestImagePath(string name)
    {
        string image = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "guests", "bin", $"{name}.bin");
        return Path.GetFullPath(File.Exists(image) ? image : Path.Combine("guests", "bin", $"{name}.bin"));
    }

    /// <param name="warmUp">How long the guest runs before the migration starts.</param>
    /// <param name="untilSwitchover">Returns once the migration should switch to postcopy.</param>
    public static (MigrationStats Sent, MigrationStats Received) Migrate(
        IAccelerator kvm,
        string benchmark,
        string image,
        MachineConfig config,
        TimeSpan warmUp,
        MigrationCapabilities capabilities,
        MigrationParameters parameters,
        Action<MigrationSource> untilSwitchover)
    {
        // VMM_BENCH_DEBUG=1 shows the VMM's debug log (switchover phases, fault thread) next to the table.
        ILogger log = new LoggerConfiguration()
            .MinimumLevel.Is(Environment.GetEnvironmentVariable("VMM_BENCH_DEBUG") == "1" ? LogEventLevel.Debug : LogEventLevel.Warning)
            .WriteTo.Console(standardErrorFromLevel: LogEventLevel.Verbose)
            .CreateLogger();
        var sink = new NullSerialSink();
        using VirtualMachine source = VirtualMachine.Create(kvm, config, sink, log, TextWriter.Null);
        using VirtualMachine destination = VirtualMachine.Create(kvm, config, sink, log, TextWriter.Null);
        source.Load(GuestImage.Load(image, GuestImage.DefaultLoadAddress, config.MemorySize));
        source.Start();
        Thread.Sleep(warmUp);

        source.Migration.SetCapabilities(capabilities);
        destination.Migration.SetCapabilities(capabilities);
        source.Migration.SetParameters(parameters);
        destination.SetStoppedState(RunState.InMigrate);
        string socket = Path.Combine(Path.GetTempPath(), $"vmm-bench-{benchmark}-{Environment.ProcessId}.sock");
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{socket}"));
        var incoming = Task.Run(() => destination.Migration.RunIncoming(listener));

        MigrationSource migration = source.Migration.Migrate($"unix:{socket}");
        untilSwitchover(migration);
        source.Migration.StartPostcopy();
        if (!migration.Completion.Wait(TimeSpan.FromSeconds(60)) || !incoming.Wait(TimeSpan.FromSeconds(30)))
        {
            throw new TimeoutException($"{benchmark} benchmark: the migration did not finish. source: {migration.Stats}; destination: {destination.Migration.Stats}");
        }

        MigrationStats sent = migration.Stats;
        MigrationStats received = destination.Migration.Stats!;
        if (sent.Status != MigrationStatus.Completed || received.Status != MigrationStatus.Completed)
        {
            throw new InvalidOperationException($"{benchmark} benchmark: {sent.Status} / {received.Status}: {sent.ErrorDescription ?? received.ErrorDescription}");
        }

        File.Delete(socket);
        return (sent, received);
    }
}
