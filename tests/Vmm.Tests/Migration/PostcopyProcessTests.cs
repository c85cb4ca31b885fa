using System.Text.Json;
using Vmm.Tests.Infrastructure;
using Vmm.Tests.Qmp;

namespace Vmm.Tests.Migration;

/// <summary>Postcopy between two real `dotnet vmm` processes, through `dotnet vmm migrate --postcopy`.</summary>
[Collection(MigrationProcessCollection.Name)]
public sealed class PostcopyProcessTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vmm-pcmig-").FullName;

    [Theory]
    [InlineData("anonymous", true, true)]
    [InlineData("hugetlbfs", true, true)]
    [InlineData("shared", true, true)]
    [InlineData("shared", false, true)]
    [InlineData("anonymous", true, false)]
    public void TheVerbMovesARunningGuestWithPostcopy(string backend, bool minorFaults, bool preempt)
    {
        using MigrationVmm source = MigrationVmm.StartSource(dir, backend: backend);
        using MigrationVmm destination = MigrationVmm.StartDestination(dir, backend: backend);
        source.WaitForMorePasses(3, from: 0);
        using QmpTestClient events = source.Connect();

        using VmmProcess verb = VmmProcess.Start(
            ["migrate", "--monitor", source.MonitorPath, "--to", destination.IncomingUri, "--postcopy", "--postcopy-after", "0", "--destination-monitor", destination.MonitorPath,
                "--max-bandwidth", "64M", // the push too: the guest there meets missing pages before it ends (below)
                .. minorFaults ? Array.Empty<string>() : ["--no-minor-faults"],
                .. preempt ? Array.Empty<string>() : ["--no-preempt"]],
            environment: null,
            workingDirectory: dir);
        VmmResult result = verb.WaitForExit(PrecopyProcessTests.VerbTimeout);

        Assert.True(result.ExitCode == 0, $"migrate exited {result.ExitCode}; stdout: {result.Stdout} stderr: {result.Stderr}");
        Assert.Contains("postcopy-active", result.Stdout);
        Assert.Contains("completed", result.Stdout);

        // The source went through postcopy-active, served page requests and ended in postmigrate.
        List<string> statuses = PrecopyProcessTests.MigrationEvents(events, "completed", out _);
        Assert.Contains("postcopy-active", statuses);
        Assert.Equal("completed", statuses[^1]);
        JsonElement sent = events.Return("query-migrate");
        // The push is capped (--max-bandwidth): its 16 MiB take 250 ms, so the guest there, whose first instructions
        // come within 20 ms of the switchover on either accelerator, meets missing pages and requests them.
        Assert.True(sent.GetProperty("ram").GetProperty("postcopy-requests").GetUInt64() > 0, $"no page was requested: {sent}");

        // With the preempt channel (the default) every answer (if any was asked for) went on it; with --no-preempt none did.
        ulong preemptPages = sent.GetProperty("ram").GetProperty("postcopy-preempt-pages").GetUInt64();
        ulong requests = sent.GetProperty("ram").GetProperty("postcopy-requests").GetUInt64();
        Assert.True(preempt ? preemptPages > 0 || requests == 0 : preemptPages == 0, $"postcopy-preempt-pages {preemptPages} with preempt {preempt}: {sent}");

        // Two processes on one host over a Unix socket: with the preempt channel the push's data goes through the
        // shared ring, whose memfd crossed from one process to the other; without the channel there is no ring. The
        // guest's 4 KiB pages are mostly zeros, so most (often all) go as sparse pages on the stream instead
        // (sparse-pages); huge pages never go sparse, so on hugetlbfs every pushed page went through the ring.
        ulong sharedPages = sent.GetProperty("ram").GetProperty("postcopy-shared-memory-pages").GetUInt64();
        ulong sparsePages = sent.GetProperty("ram").GetProperty("sparse-pages").GetUInt64();
        if (!preempt)
        {
            Assert.True(sharedPages == 0, $"postcopy-shared-memory-pages {sharedPages} without the preempt channel: {sent}");
        }
        else if (backend == "hugetlbfs")
        {
            Assert.True(sharedPages > 0, $"no page went through the shared ring between the two processes: {sent}");
        }
        else
        {
            Assert.True(sharedPages + sparsePages > 0, $"neither ring nor sparse pages in the push: {sent}");
        }

        Assert.True(backend == "hugetlbfs" ? sparsePages == 0 : sparsePages > 0, $"sparse-pages {sparsePages} on {backend} (huge pages never go sparse): {sent}");
        Assert.Equal("postmigrate", source.RunStatus());

        // The destination reports its own side: requests, block time, fault latency.
        using QmpTestClient destinationClient = destination.Connect();
        JsonElement received = destinationClient.Return("query-migrate");
        Assert.Equal("completed", received.GetProperty("status").GetString());
        Assert.Equal(sharedPages, received.GetProperty("ram").GetProperty("postcopy-shared-memory-pages").GetUInt64());
        Assert.Equal(sparsePages, received.GetProperty("ram").GetProperty("sparse-pages").GetUInt64());

        // Without a single fault (possible on the software CPU, above) there is no latency to report.
        bool faulted = received.TryGetProperty("postcopy-fault-latency", out JsonElement latency);
        if (TestAccelerator.Kind == Accelerator.AcceleratorKind.Kvm)
        {
            Assert.True(faulted && latency.GetProperty("faults").GetUInt64() > 0, $"{received}");
        }

        int expectedMinorBlocks = minorFaults && backend != "anonymous" ? 1 : 0;
        if (faulted)
        {
            Assert.True(received.TryGetProperty("postcopy-blocktime", out _), $"{received}");
            Assert.Equal(expectedMinorBlocks, latency.GetProperty("minor-blocks").GetInt32());
        }

        destination.WaitForMorePasses(3);
        Assert.Null(destination.StopAndCheckDirtyConsistency());
    }

    [Fact]
    public void PostcopyWithoutTheCapabilityOnTheDestinationIsRefusedBeforeAnythingIrreversible()
    {
        using MigrationVmm source = MigrationVmm.StartSource(dir);
        using MigrationVmm destination = MigrationVmm.StartDestination(dir);
        source.WaitForMorePasses(1, from: 0);

        // No --destination-monitor: the destination never enabled postcopy-ram and refuses at ADVISE.
        VmmResult result = VmmProcess.Run(
            ["migrate", "--monitor", source.MonitorPath, "--to", destination.IncomingUri, "--postcopy"],
            PrecopyProcessTests.VerbTimeout,
            workingDirectory: dir);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("postcopy-ram capability is not enabled on the destination", result.Stderr);
        int before = source.CountB();
        source.WaitForMorePasses(2, from: before);
        Assert.Equal("running", source.RunStatus());
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);
}
