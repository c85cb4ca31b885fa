using System.Text.Json;
using System.Text.RegularExpressions;
using Vmm.Tests.Infrastructure;
using Vmm.Tests.Qmp;

namespace Vmm.Tests.Migration;

/// <summary>
/// Precopy between two real `dotnet vmm` processes, driven by `dotnet vmm migrate` and by QMP: a running dirty-16m
/// guest with 128 MiB moves and keeps running over there without losing a byte; failures leave the source running.
/// </summary>
[Collection(MigrationProcessCollection.Name)]
public sealed partial class PrecopyProcessTests : IDisposable
{
    internal static readonly TimeSpan VerbTimeout = TimeSpan.FromSeconds(120);

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-mig-").FullName;

    [Theory]
    [InlineData("anonymous")]
    [InlineData("shared")]
    [InlineData("hugetlbfs")]
    public void TheVerbMovesARunningDirtyGuestOnEveryRamBackend(string backend)
    {
        using MigrationVmm source = MigrationVmm.StartSource(dir, backend: backend);
        using MigrationVmm destination = MigrationVmm.StartDestination(dir, backend: backend);
        source.WaitForMorePasses(3, from: 0);
        using QmpTestClient events = source.Connect();
        Assert.Empty(events.Return("query-migrate").EnumerateObject()); // QEMU's {} before any migration

        VmmResult verb = Verb(source, destination.IncomingUri);

        Assert.True(verb.ExitCode == 0, $"migrate exited {verb.ExitCode}; stdout: {verb.Stdout} stderr: {verb.Stderr}");
        Assert.Empty(verb.Stderr);
        AssertOnlyProgressAndSummary(verb.Stdout);
        Assert.Matches(SummaryRow("status", "completed"), verb.Stdout);
        Assert.Matches(SummaryRow("downtime", @"\d+ us \(\d+\.\d ms\)"), verb.Stdout);

        // The events a QMP client on the source saw, in order.
        List<string> statuses = MigrationEvents(events, "completed", out int passEvents);
        Assert.Equal(["setup", "active", "completed"], statuses);
        Assert.True(passEvents >= 1, "no MIGRATION_PASS event");
        AssertCompletedShape(events.Return("query-migrate"), passEvents);

        // The guest runs over there now, and only there.
        Assert.Equal("postmigrate", source.RunStatus());
        Assert.Equal("running", destination.RunStatus());
        destination.WaitForMorePasses(3);
        int sourcePasses = source.CountB();
        Thread.Sleep(300);
        Assert.Equal(sourcePasses, source.CountB());
        Assert.DoesNotContain('A', destination.Process.Stdout); // continued, not rebooted

        Assert.Null(destination.StopAndCheckDirtyConsistency());
        Assert.Equal("paused", destination.RunStatus());
    }

    [Fact]
    public void MigrateCancelAndCtrlCInTheVerbLeaveTheSourceRunning()
    {
        using MigrationVmm source = MigrationVmm.StartSource(dir);
        source.WaitForMorePasses(1, from: 0);
        using QmpTestClient client = source.Connect();

        // QMP: migrate, then migrate_cancel while it is active (throttled to 4 MiB/s, so 16 MiB of data take seconds).
        using (MigrationVmm destination = MigrationVmm.StartDestination(dir, "dst1"))
        {
            client.Return("migrate-set-parameters", new Dictionary<string, ulong> { ["max-bandwidth"] = 4 << 20 });
            client.Return("migrate", new { uri = destination.IncomingUri });
            JsonElement active = source.WaitForMigrate(client, i => MigrationVmm.Status(i) == "active" && MigrationVmm.Transferred(i) > 1 << 20, "an active migration");
            AssertActiveShape(active);

            client.Return("migrate_cancel");
            JsonElement cancelled = source.WaitForMigrate(client, i => MigrationVmm.Status(i) == "cancelled", "the cancellation", TimeSpan.FromSeconds(30));
            Assert.False(cancelled.TryGetProperty("error-desc", out _), $"a cancelled migration is not an error: {cancelled}");
            List<string> statuses = MigrationEvents(client, "cancelled", out _);
            Assert.Equal(["setup", "active"], statuses.Take(2));
            AssertStillRunning(source);
            AssertDestinationGaveUp(destination);
        }

        // The verb: Ctrl-C sends migrate_cancel and waits for the source to settle.
        using (MigrationVmm destination = MigrationVmm.StartDestination(dir, "dst2"))
        {
            using VmmProcess verb = VmmProcess.Start(["migrate", "--monitor", source.MonitorPath, "--to", destination.IncomingUri, "--max-bandwidth", "4M"], environment: null, workingDirectory: dir);
            source.WaitForMigrate(client, i => MigrationVmm.Status(i) == "active" && MigrationVmm.Transferred(i) > 1 << 20, "the verb's migration");
            verb.WaitForStdout(s => s.Contains("active"), MigrationVmm.StartTimeout);
            MigrationVmm.Interrupt(verb);

            VmmResult result = verb.WaitForExit(TimeSpan.FromSeconds(60));
            Assert.True(result.ExitCode == 1, $"migrate exited {result.ExitCode}; stdout: {result.Stdout} stderr: {result.Stderr}");
            Assert.Contains("vmm: error: migration cancelled; the guest keeps running on the source", result.StderrLines);
            AssertOnlyProgressAndSummary(result.Stdout);
            Assert.Matches(SummaryRow("status", "cancelled"), result.Stdout);
            Assert.Equal("cancelled", MigrationVmm.Status(client.Return("query-migrate")));
            AssertStillRunning(source);
            AssertDestinationGaveUp(destination);
        }
    }

    [Fact]
    public void ADestinationKilledMidMigrationFailsItTheSourceRunsOnAndASecondAttemptSucceeds()
    {
        using MigrationVmm source = MigrationVmm.StartSource(dir);
        source.WaitForMorePasses(1, from: 0);
        using QmpTestClient client = source.Connect();

        using (MigrationVmm doomed = MigrationVmm.StartDestination(dir, "dst1"))
        {
            using VmmProcess verb = VmmProcess.Start(["migrate", "--monitor", source.MonitorPath, "--to", doomed.IncomingUri, "--max-bandwidth", "4M"], environment: null, workingDirectory: dir);
            source.WaitForMigrate(client, i => MigrationVmm.Status(i) == "active" && MigrationVmm.Transferred(i) > 1 << 20, "an active migration");
            doomed.Process.Kill(); // SIGKILL

            VmmResult result = verb.WaitForExit(TimeSpan.FromSeconds(60));
            Assert.True(result.ExitCode == 1, $"migrate exited {result.ExitCode}; stdout: {result.Stdout} stderr: {result.Stderr}");
            JsonElement failed = client.Return("query-migrate");
            Assert.Equal("failed", MigrationVmm.Status(failed));
            string why = failed.GetProperty("error-desc").GetString()!;
            Assert.Contains("connection", why);
            Assert.Equal([$"vmm: error: migration failed: {why}"], result.StderrLines);
            Assert.Matches(SummaryRow("status", "failed"), result.Stdout);

            // Still running, without anyone sending cont.
            AssertStillRunning(source);
        }

        using MigrationVmm destination = MigrationVmm.StartDestination(dir, "dst2");
        VmmResult second = Verb(source, destination.IncomingUri, "--max-bandwidth", "0");
        Assert.True(second.ExitCode == 0, $"the second migration exited {second.ExitCode}; stdout: {second.Stdout} stderr: {second.Stderr}");
        Assert.Equal("postmigrate", source.RunStatus());
        destination.WaitForMorePasses(3);
        Assert.Null(destination.StopAndCheckDirtyConsistency());
    }

    internal static VmmResult Verb(MigrationVmm source, string uri, params string[] extra) =>
        VmmProcess.Run(["migrate", "--monitor", source.MonitorPath, "--to", uri, .. extra], VerbTimeout);

    /// <summary>A row of the verb's summary table (ASCII borders when stdout is not a terminal).</summary>
    internal static Regex SummaryRow(string field, string valuePattern) => new($@"(?m)^\|\s*{Regex.Escape(field)}\s*\|\s*{valuePattern}\s*\|\s*$");

    /// <summary>stdout of the verb holds progress lines and the summary table, nothing else.</summary>
    internal static void AssertOnlyProgressAndSummary(string stdout)
    {
        Assert.NotEmpty(stdout);
        foreach (string line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            Assert.Matches(ProgressOrTableLine(), line);
        }
    }

    internal static void AssertStillRunning(MigrationVmm source)
    {
        Assert.Equal("running", source.RunStatus());
        source.WaitForMorePasses(3);
    }

    /// <summary>A destination whose source went away: status 8, one line on stderr, no guest output.</summary>
    internal static void AssertDestinationGaveUp(MigrationVmm destination)
    {
        VmmResult gone = destination.Process.WaitForExit(TimeSpan.FromSeconds(30));
        Assert.Equal(8, gone.ExitCode);
        Assert.Empty(gone.StdoutBytes);
        Assert.StartsWith("vmm: error: incoming migration failed: ", Assert.Single(gone.StderrLines));
    }

    /// <summary>
    /// The statuses of the MIGRATION events a client received, in order, up to <paramref name="final"/>; counts the
    /// MIGRATION_PASS events on the way. Other events (STOP, RESUME) are skipped.
    /// </summary>
    internal static List<string> MigrationEvents(QmpTestClient client, string final, out int passes)
    {
        var statuses = new List<string>();
        passes = 0;
        DateTime deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            JsonElement message;
            if (client.Events.Count > 0)
            {
                message = client.Events[0];
                client.Events.RemoveAt(0);
            }
            else
            {
                TimeSpan left = deadline - DateTime.UtcNow;
                Assert.True(left > TimeSpan.Zero, $"no MIGRATION {final} event; saw {string.Join(", ", statuses)}");
                message = client.ReadMessage(left);
            }

            switch (message.GetProperty("event").GetString())
            {
                case "MIGRATION":
                    string status = message.GetProperty("data").GetProperty("status").GetString()!;
                    statuses.Add(status);
                    if (status == final)
                    {
                        return statuses;
                    }

                    break;

                case "MIGRATION_PASS":
                    passes++;
                    Assert.Equal(passes, message.GetProperty("data").GetProperty("pass").GetInt32());
                    break;
            }
        }
    }

    private static void AssertCompletedShape(JsonElement info, int passes)
    {
        Assert.Equal("completed", MigrationVmm.Status(info));
        long total = info.GetProperty("total-time").GetInt64();
        long setup = info.GetProperty("setup-time").GetInt64();
        long downtime = info.GetProperty("downtime").GetInt64();
        Assert.InRange(setup, 0, total);
        Assert.InRange(downtime, 0, total);
        Assert.False(info.TryGetProperty("error-desc", out _));
        JsonElement ram = AssertRamShape(info);
        Assert.Equal(0ul, ram.GetProperty("remaining").GetUInt64());
        Assert.Equal(128ul << 20, ram.GetProperty("total").GetUInt64());
        Assert.True(ram.GetProperty("normal").GetUInt64() >= (16 << 20) / 4096, $"fewer pages with data than the guest dirties: {ram}");
        Assert.True(ram.GetProperty("duplicate").GetUInt64() > 0, $"no zero pages: {ram}");
        // Pages with data went whole, except sparse pages (a few bytes each).
        Assert.True(ram.GetProperty("transferred").GetUInt64() >= (ram.GetProperty("normal").GetUInt64() - ram.GetProperty("sparse-pages").GetUInt64()) * 4096, $"{ram}");
        Assert.Equal((ulong)passes, ram.GetProperty("dirty-sync-count").GetUInt64());
        Assert.True(ram.GetProperty("mbps").GetDouble() > 0);
        Assert.True(ram.GetProperty("pages-per-second").GetUInt64() > 0);
    }

    private static void AssertActiveShape(JsonElement info)
    {
        Assert.Equal("active", MigrationVmm.Status(info));
        Assert.True(info.GetProperty("total-time").GetInt64() >= info.GetProperty("setup-time").GetInt64());
        Assert.True(info.GetProperty("expected-downtime").GetInt64() >= 0);
        Assert.False(info.TryGetProperty("downtime", out _), $"no downtime before the switchover: {info}");
        JsonElement ram = AssertRamShape(info);
        Assert.Equal(128ul << 20, ram.GetProperty("total").GetUInt64());
        Assert.True(ram.GetProperty("transferred").GetUInt64() > 1 << 20);
    }

    private static JsonElement AssertRamShape(JsonElement info)
    {
        JsonElement ram = info.GetProperty("ram");
        foreach (string field in new[] { "transferred", "remaining", "total", "duplicate", "normal", "dirty-pages-rate", "dirty-sync-count", "pages-per-second" })
        {
            Assert.True(ram.TryGetProperty(field, out JsonElement value) && value.ValueKind == JsonValueKind.Number && value.TryGetUInt64(out _), $"ram.{field} missing or not a count: {ram}");
        }

        Assert.Equal(JsonValueKind.Number, ram.GetProperty("mbps").ValueKind);
        return ram;
    }

    [GeneratedRegex(@"^(\s*\d+\.\d s  \S+\s+pass\s+\d+  transferred .* Mbps|\+-[-+]*-\+|\|.*\|)$")]
    private static partial Regex ProgressOrTableLine();

    public void Dispose()
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
            // A socket or dump still being removed by a dying child: temp is cleaned up eventually anyway.
        }
    }
}
