using System.Text.Json;
using Vmm.Tests.Infrastructure;
using Vmm.Tests.Qmp;

namespace Vmm.Tests.Migration;

/// <summary>
/// Postcopy recovery between two real `dotnet vmm` processes, driven through QMP and `dotnet vmm migrate --resume`:
/// the connection is cut (through <see cref="FaultyProxy"/>) in the middle of the push, both sides pause, and the verb
/// brings the migration to completed.
/// </summary>
[Collection(MigrationProcessCollection.Name)]
public sealed class PostcopyRecoveryProcessTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vmm-pcrec-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void TheVerbResumesAPostcopyCutInTheMiddleOfThePush()
    {
        using MigrationVmm source = MigrationVmm.StartSource(dir);
        using MigrationVmm destination = MigrationVmm.StartDestination(dir);
        source.WaitForMorePasses(1, from: 0);
        using QmpTestClient src = source.Connect();
        using QmpTestClient dst = destination.Connect();
        object postcopyRam = new { capabilities = new[] { new { capability = "postcopy-ram", state = true } } };
        src.Return("migrate-set-capabilities", postcopyRam);
        dst.Return("migrate-set-capabilities", postcopyRam);

        // A slow push, so the cut lands in its middle.
        src.Return("migrate-set-parameters", new Dictionary<string, object> { ["max-bandwidth"] = 8 << 20 });
        using var proxy = new FaultyProxy(Path.Combine(dir, "proxy.sock"), destination.IncomingPath, long.MaxValue, ProxyFault.Drop);
        src.Return("migrate", new { uri = $"unix:{Path.Combine(dir, "proxy.sock")}" });
        Thread.Sleep(300);
        src.Return("migrate-start-postcopy");
        Wait.Until(() => Status(src) == "postcopy-active" && Status(dst) == "postcopy-active", "no switchover");
        Assert.True(proxy.Drop(0));
        Wait.Until(() => Status(src) == "postcopy-paused" && Status(dst) == "postcopy-paused", "not both paused");

        // Cancelling is refused now: the guest lives on the destination. Recovering is a destination's command in
        // postcopy-paused, resuming a source's: each side refuses the other's.
        Assert.Contains("cannot cancel", src.Error("migrate_cancel"));
        Assert.Contains("postcopy-paused", src.Error("migrate-recover", new { uri = $"unix:{Path.Combine(dir, "no.sock")}" }));
        Assert.Contains("there is no paused migration to resume", dst.Error("migrate", new { uri = $"unix:{Path.Combine(dir, "no.sock")}", resume = true }));
        Assert.Equal("postcopy-paused", Status(src));
        Assert.Equal("postcopy-paused", Status(dst));

        // Full speed for the rest, set while paused.
        src.Return("migrate-set-parameters", new Dictionary<string, object> { ["max-postcopy-bandwidth"] = 0 });
        VmmResult result = VmmProcess.Run(
            ["migrate", "--resume", "--monitor", source.MonitorPath, "--to", $"unix:{Path.Combine(dir, "again.sock")}", "--destination-monitor", destination.MonitorPath],
            PrecopyProcessTests.VerbTimeout);

        Assert.True(result.ExitCode == 0, $"migrate --resume exited {result.ExitCode}; stdout: {result.Stdout} stderr: {result.Stderr}");
        Assert.Contains("completed", result.Stdout);
        Wait.Until(() => Status(dst) == "completed", "the destination did not complete");

        // MIGRATION events on both sides, from the cut on: paused, recovering, active again, completed.
        string[] recovery = ["postcopy-paused", "postcopy-recover", "postcopy-active", "completed"];
        foreach ((string side, QmpTestClient client) in new[] { ("source", src), ("destination", dst) })
        {
            List<string> statuses = PrecopyProcessTests.MigrationEvents(client, "completed", out _);
            int paused = statuses.LastIndexOf("postcopy-paused");
            Assert.True(paused >= 0 && statuses.Skip(paused).SequenceEqual(recovery), $"{side}'s MIGRATION events: {string.Join(", ", statuses)}");
        }

        Assert.Equal("postmigrate", source.RunStatus());
        int passes = destination.CountB();
        Wait.Until(() => destination.CountB() > passes + 1, "the guest stopped printing on the destination");
        Assert.Null(destination.StopAndCheckDirtyConsistency());
    }

    private static string? Status(QmpTestClient client) => MigrationVmm.Status(client.Return("query-migrate"));
}
