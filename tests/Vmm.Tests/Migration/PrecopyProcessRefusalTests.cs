using System.Text.Json;
using Vmm.Tests.Infrastructure;
using Vmm.Tests.Qmp;

namespace Vmm.Tests.Migration;

/// <summary>One running 128 MiB dirty-16m source shared by tests that all leave it running.</summary>
public sealed class RunningSourceFixture : IDisposable
{
    private MigrationVmm? source;

    public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("vmm-mig-").FullName;

    /// <summary>Started on first use, so that a host without KVM skips instead of failing in the fixture.</summary>
    public MigrationVmm Source
    {
        get
        {
            if (source is null)
            {
                source = MigrationVmm.StartSource(Directory);
                source.WaitForMorePasses(1, from: 0);
            }

            return source;
        }
    }

    public void Dispose()
    {
        source?.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Cleaned up with the rest of temp eventually.
        }
    }
}

/// <summary>Capabilities and parameters, and migrations that must fail with the source still running afterwards.</summary>
[Collection(MigrationProcessCollection.Name)]
public sealed class PrecopyProcessRefusalTests(RunningSourceFixture fixture) : IClassFixture<RunningSourceFixture>
{
    [Fact]
    public void CapabilitiesAndParametersRoundTripLikeQemu()
    {
        using QmpTestClient client = fixture.Source.Connect();

        Assert.False(Capability(client, "postcopy-ram"));
        Assert.True(Capability(client, "events"));
        Assert.True(Capability(client, "postcopy-preempt"));
        client.Return("migrate-set-capabilities", new { capabilities = new[] { new { capability = "postcopy-preempt", state = false } } });
        Assert.False(Capability(client, "postcopy-preempt"));
        client.Return("migrate-set-capabilities", new { capabilities = new[] { new { capability = "postcopy-preempt", state = true } } });
        Assert.True(Capability(client, "postcopy-preempt"));
        client.Return("migrate-set-capabilities", new { capabilities = new[] { new { capability = "postcopy-ram", state = true } } });
        Assert.True(Capability(client, "postcopy-ram"));
        client.Return("migrate-set-capabilities", new { capabilities = new[] { new { capability = "postcopy-ram", state = false } } });
        Assert.False(Capability(client, "postcopy-ram"));
        Assert.Equal(
            "Parameter 'capability' does not accept value 'frobnicate'",
            client.Error("migrate-set-capabilities", new { capabilities = new[] { new { capability = "frobnicate", state = true } } }));

        client.Return("migrate-set-parameters", new Dictionary<string, ulong> { ["downtime-limit"] = 123, ["max-bandwidth"] = 33554432 });
        JsonElement parameters = client.Return("query-migrate-parameters");
        Assert.Equal(123ul, parameters.GetProperty("downtime-limit").GetUInt64());
        Assert.Equal(33554432ul, parameters.GetProperty("max-bandwidth").GetUInt64());

        // Only what is given changes.
        client.Return("migrate-set-parameters", new Dictionary<string, ulong> { ["downtime-limit"] = 50 });
        parameters = client.Return("query-migrate-parameters");
        Assert.Equal(50ul, parameters.GetProperty("downtime-limit").GetUInt64());
        Assert.Equal(33554432ul, parameters.GetProperty("max-bandwidth").GetUInt64());

        Assert.Contains("downtime-limit", client.Error("migrate-set-parameters", new Dictionary<string, ulong> { ["downtime-limit"] = 2_000_001 }));
        Assert.Equal("Parameter 'max-bandwidth' expects integer", client.Error("migrate-set-parameters", new Dictionary<string, object> { ["max-bandwidth"] = "fast" }));
        Assert.Equal(50ul, client.Return("query-migrate-parameters").GetProperty("downtime-limit").GetUInt64());

        // TLS, QEMU's names; "" for tls-creds turns it off again.
        Assert.Equal(string.Empty, parameters.GetProperty("tls-creds").GetString());
        client.Return("migrate-set-parameters", new Dictionary<string, string> { ["tls-creds"] = "/etc/vmm/pki", ["tls-hostname"] = "dst.example", ["tls-authz"] = "vmm-a, vmm-b" });
        parameters = client.Return("query-migrate-parameters");
        Assert.Equal("/etc/vmm/pki", parameters.GetProperty("tls-creds").GetString());
        Assert.Equal("dst.example", parameters.GetProperty("tls-hostname").GetString());
        Assert.Equal("vmm-a,vmm-b", parameters.GetProperty("tls-authz").GetString());
        Assert.Equal(50ul, parameters.GetProperty("downtime-limit").GetUInt64());
        client.Return("migrate-set-parameters", new Dictionary<string, string> { ["tls-creds"] = string.Empty });
        Assert.Equal(string.Empty, client.Return("query-migrate-parameters").GetProperty("tls-creds").GetString());

        client.Return("migrate-set-parameters", new Dictionary<string, ulong> { ["downtime-limit"] = 300, ["max-bandwidth"] = 0 });

        // Nothing to cancel: a no-op, as in QEMU.
        client.Return("migrate_cancel");
        Assert.Equal("running", fixture.Source.RunStatus());
    }

    [Fact]
    public void ConnectionRefusedThroughTheVerbIsStatusOneAndTheSourceRunsOn()
    {
        string nobody = $"unix:{Path.Combine(fixture.Directory, "nobody.mig")}";

        VmmResult verb = PrecopyProcessTests.Verb(fixture.Source, nobody);

        Assert.True(verb.ExitCode == 1, $"migrate exited {verb.ExitCode}; stdout: {verb.Stdout} stderr: {verb.Stderr}");
        string line = Assert.Single(verb.StderrLines);
        Assert.StartsWith($"vmm: error: migration failed: cannot connect to {nobody}: ", line);
        PrecopyProcessTests.AssertOnlyProgressAndSummary(verb.Stdout);
        Assert.Matches(PrecopyProcessTests.SummaryRow("status", "failed"), verb.Stdout);

        using QmpTestClient client = fixture.Source.Connect();
        JsonElement info = client.Return("query-migrate");
        Assert.Equal("failed", MigrationVmm.Status(info));
        Assert.Equal(line["vmm: error: migration failed: ".Length..], info.GetProperty("error-desc").GetString());
        PrecopyProcessTests.AssertStillRunning(fixture.Source);
    }

    [Fact]
    public void ADestinationWithAnotherMemorySizeRefusesWithStatusEight()
    {
        using MigrationVmm destination = MigrationVmm.StartDestination(fixture.Directory, "small", memory: "64M");

        VmmResult verb = PrecopyProcessTests.Verb(fixture.Source, destination.IncomingUri);

        // The destination: status 8, one line naming the block and both sizes, no guest output.
        VmmResult refused = destination.Process.WaitForExit(TimeSpan.FromSeconds(30));
        Assert.Equal(8, refused.ExitCode);
        Assert.Empty(refused.StdoutBytes);
        string line = Assert.Single(refused.StderrLines);
        Assert.StartsWith("vmm: error: incoming migration failed: the source's RAM layout does not match this machine: RAM block 'pc.ram'", line);
        Assert.Contains("134217728", line);
        Assert.Contains("67108864", line);

        // The source: failed, with the destination's reason.
        Assert.True(verb.ExitCode == 1, $"migrate exited {verb.ExitCode}; stdout: {verb.Stdout} stderr: {verb.Stderr}");
        string error = Assert.Single(verb.StderrLines);
        Assert.StartsWith("vmm: error: migration failed: the destination failed: the source's RAM layout does not match this machine: RAM block 'pc.ram'", error);
        using QmpTestClient client = fixture.Source.Connect();
        Assert.Equal("failed", MigrationVmm.Status(client.Return("query-migrate")));
        PrecopyProcessTests.AssertStillRunning(fixture.Source);
    }

    /// <summary>A destination waiting for its guest refuses cont and system_reset: the migration starts the guest.</summary>
    [Fact]
    public void ADestinationInMigrateRefusesContAndReset()
    {
        using MigrationVmm destination = MigrationVmm.StartDestination(fixture.Directory, "waiting", memory: "64M");
        using QmpTestClient client = destination.Connect();
        Assert.Contains("still arriving by migration (inmigrate)", client.Error("cont"));
        Assert.Contains("still arriving by migration (inmigrate)", client.Error("system_reset"));
        Assert.Equal("inmigrate", client.Return("query-status").GetProperty("status").GetString());
    }

    [Fact]
    public void TheVerbRejectsBadOptionsWithStatusTwoBeforeTouchingTheMonitor()
    {
        string monitor = fixture.Source.MonitorPath;
        AssertUsage(["migrate", "--monitor", monitor, "--to", "carrier-pigeon:home"], "vmm: error: --to: 'carrier-pigeon:home' is not a migration URI (expected tcp:HOST:PORT or unix:PATH)");
        AssertUsage(["migrate", "--monitor", monitor, "--to", "unix:/tmp/x", "--downtime-limit", "soon"], "vmm: error: --downtime-limit: 'soon' is not a number of milliseconds from 0 to 2000000");
        AssertUsage(["migrate", "--monitor", monitor, "--to", "unix:/tmp/x", "--max-bandwidth", "lots"], "vmm: error: --max-bandwidth: 'lots' is not a number of bytes per second (e.g. 100M; 0 = unlimited)");
        AssertUsage(["migrate", "--monitor", monitor], "vmm: error: Option '--to' is required.");
        AssertUsage(
            ["migrate", "--monitor", monitor, "--to", "unix:/tmp/x", "--no-preempt"],
            "vmm: error: --postcopy-after, --no-minor-faults, --no-preempt and --destination-monitor go with --postcopy");
        AssertUsage(
            ["migrate", "--monitor", monitor, "--to", "unix:/tmp/x", "--resume", "--postcopy"],
            "vmm: error: --resume takes only --monitor, --to and --destination-monitor");
        AssertUsage(
            ["migrate", "--monitor", monitor, "--to", "unix:/tmp/x", "--resume", "--max-bandwidth", "1M"],
            "vmm: error: --resume takes only --monitor, --to and --destination-monitor");

        string nowhere = Path.Combine(fixture.Directory, "nowhere.qmp");
        VmmResult result = VmmProcess.Run(["migrate", "--monitor", nowhere, "--to", "unix:/tmp/x"], PrecopyProcessTests.VerbTimeout);
        Assert.Equal(2, result.ExitCode);
        Assert.Empty(result.StdoutBytes);
        Assert.StartsWith($"vmm: error: cannot connect to monitor socket {nowhere}", Assert.Single(result.StderrLines));

        // None of this started a migration.
        using QmpTestClient client = fixture.Source.Connect();
        Assert.NotEqual("active", MigrationVmm.Status(client.Return("query-migrate")));
        Assert.Equal("running", fixture.Source.RunStatus());
    }

    private static void AssertUsage(string[] arguments, string expectedFirstLine)
    {
        VmmResult result = VmmProcess.Run(arguments, PrecopyProcessTests.VerbTimeout);
        Assert.Equal(2, result.ExitCode);
        Assert.Empty(result.StdoutBytes);
        Assert.Equal(expectedFirstLine, result.StderrLines[0]);
    }

    private static bool Capability(QmpTestClient client, string name) =>
        client.Return("query-migrate-capabilities").EnumerateArray()
            .Single(c => c.GetProperty("capability").GetString() == name)
            .GetProperty("state").GetBoolean();
}
