using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using Vmm.Tests.Infrastructure;
using Vmm.Tests.Qmp;

namespace Vmm.Tests.Migration;

/// <summary>
/// A real `dotnet vmm run` child process for the migration tests, always with a QMP monitor: a source running a guest,
/// or a destination started with --incoming (which listens before its monitor opens, so a monitor that answers
/// query-status with "inmigrate" means the destination is ready). Sockets live in a short private directory
/// (sun_path is 108 bytes).
/// </summary>
public sealed partial class MigrationVmm : IDisposable
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private MigrationVmm(string directory, string name)
    {
        Directory = directory;
        Name = name;
    }

    public string Directory { get; }

    public string Name { get; }

    public VmmProcess Process { get; private set; } = null!;

    public string MonitorPath => Path.Combine(Directory, $"{Name}.qmp");

    /// <summary>unix:PATH where a destination listens for the migration stream.</summary>
    public string IncomingUri => $"unix:{Path.Combine(Directory, $"{Name}.mig")}";

    public string IncomingPath => IncomingUri["unix:".Length..];

    /// <summary>A source: `run GUEST --memory M --ram-backend B --monitor unix:…`, ready when the monitor answers "running".</summary>
    public static MigrationVmm StartSource(string directory, string name = "src", string guest = "dirty-16m", string memory = "128M", string backend = "anonymous", string? accel = null) =>
        StartSourceImage(directory, Repo.Guest(guest), [], name, memory, backend, accel);

    /// <summary>A source booting <paramref name="image"/> (any path) with <paramref name="extra"/> options (e.g. --bios vmm).</summary>
    public static MigrationVmm StartSourceImage(string directory, string image, string[] extra, string name = "src", string memory = "128M", string backend = "anonymous", string? accel = null)
    {
        var vmm = new MigrationVmm(directory, name);
        return vmm.Launch(["run", image, "--memory", memory, "--ram-backend", backend, "--monitor", $"unix:{vmm.MonitorPath}", .. AccelOption(accel), .. extra], "running");
    }

    /// <summary>A destination: `run --incoming unix:… --memory M --ram-backend B --monitor unix:…`, ready when its monitor says "inmigrate".</summary>
    public static MigrationVmm StartDestination(string directory, string name = "dst", string memory = "128M", string backend = "anonymous", string? accel = null, string[]? extra = null)
    {
        var vmm = new MigrationVmm(directory, name);
        return vmm.Launch(["run", "--incoming", vmm.IncomingUri, "--memory", memory, "--ram-backend", backend, "--monitor", $"unix:{vmm.MonitorPath}", .. AccelOption(accel), .. extra ?? []], "inmigrate");
    }

    /// <summary>`--accel A` for a process that must run on a given accelerator whatever the test pass runs on.</summary>
    private static string[] AccelOption(string? accel) => accel is null ? [] : ["--accel", accel];

    private MigrationVmm Launch(string[] arguments, string readyStatus)
    {
        Process = VmmProcess.Start(arguments, environment: null, workingDirectory: Directory);
        try
        {
            WaitForMonitor(readyStatus);
        }
        catch
        {
            Dispose();
            throw;
        }

        return this;
    }

    /// <summary>A negotiated QMP client (the tests' own, independent of vmm's client).</summary>
    public QmpTestClient Connect() => QmpTestClient.Connect(MonitorPath);

    public string RunStatus()
    {
        using QmpTestClient client = Connect();
        return client.Return("query-status").GetProperty("status").GetString()!;
    }

    public JsonElement QueryMigrate(QmpTestClient client) => client.Return("query-migrate");

    public int CountB() => Process.Stdout.Count(c => c == 'B');

    /// <summary>Waits until the guest prints <paramref name="more"/> more B's (passes of the dirty guest) than now.</summary>
    public void WaitForMorePasses(int more = 3, int? from = null)
    {
        int start = from ?? CountB();
        Process.WaitForStdout(s => s.Count(c => c == 'B') >= start + more, StartTimeout);
    }

    /// <summary>Stops the guest (QMP stop), reads [1 MiB, +length) through pmemsave and runs the DESIGN §7 check over the first byte of each page.</summary>
    public string? StopAndCheckDirtyConsistency(ulong length = 16 << 20)
    {
        using QmpTestClient client = Connect();
        client.Return("stop");
        string file = Path.Combine(Directory, $"{Name}-dirty.bin");
        client.Return("pmemsave", new { val = 1 << 20, size = length, filename = file });
        byte[] memory = File.ReadAllBytes(file);
        File.Delete(file);
        Assert.Equal((int)length, memory.Length);
        byte[] firstBytes = DirtyConsistency.FirstBytes(offset => memory[(int)(offset - (1 << 20))], 1 << 20, length);
        return DirtyConsistency.Check(firstBytes);
    }

    /// <summary>Polls query-migrate (every 50 ms, bounded) until <paramref name="condition"/> holds; returns that answer.</summary>
    public JsonElement WaitForMigrate(QmpTestClient client, Func<JsonElement, bool> condition, string what, TimeSpan? timeout = null)
    {
        DateTime deadline = DateTime.UtcNow + (timeout ?? StartTimeout);
        while (true)
        {
            JsonElement info = client.Return("query-migrate");
            if (condition(info))
            {
                return info;
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}; last query-migrate: {info}");
            Assert.False(Process.HasExited, $"the source exited while waiting for {what}: {Process.Stderr}");
            Thread.Sleep(50);
        }
    }

    public static string? Status(JsonElement info) => info.TryGetProperty("status", out JsonElement s) ? s.GetString() : null;

    public static ulong Transferred(JsonElement info) =>
        info.TryGetProperty("ram", out JsonElement ram) && ram.TryGetProperty("transferred", out JsonElement t) ? t.GetUInt64() : 0;

    /// <summary>Sends SIGINT, as Ctrl-C in a terminal would.</summary>
    public static void Interrupt(VmmProcess process) => Assert.Equal(0, Kill(process.ProcessId, 2));

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private void WaitForMonitor(string readyStatus)
    {
        DateTime deadline = DateTime.UtcNow + StartTimeout;
        string? last = null;
        while (true)
        {
            if (File.Exists(MonitorPath))
            {
                try
                {
                    using QmpTestClient client = QmpTestClient.Connect(MonitorPath);
                    last = client.Return("query-status").GetProperty("status").GetString();
                    if (last == readyStatus)
                    {
                        return;
                    }
                }
                catch (Exception e) when (e is SocketException or IOException or TimeoutException)
                {
                    // Not accepting yet, or going away.
                }
            }

            if (Process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{Name} never became {readyStatus} (last status {last ?? "none"}). exited: {Process.HasExited} stderr: [{Process.Stderr}]");
            }

            Thread.Sleep(20);
        }
    }

    public void Dispose() => Process?.Dispose();
}

/// <summary>
/// The migration tests that start `dotnet vmm` processes run one at a time and alone: a spinning source, a
/// destination and the verb on a 2-core machine leave no room for anything else.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MigrationProcessCollection
{
    public const string Name = "migration processes";
}
