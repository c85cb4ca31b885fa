using System.Text.Json;
using Vmm.Tests.Infrastructure;
using Vmm.Tests.Qmp;

namespace Vmm.Tests.Migration;

/// <summary>
/// The source's page-encoding capabilities between two real `dotnet vmm` processes: `dotnet vmm migrate --xbzrle
/// --xbzrle-cache-size` sets xbzrle through QMP, the running dirty-16m guest moves with delta pages, and query-migrate
/// shows QEMU's xbzrle-cache object; `--no-sparse-pages` turns sparse pages off.
/// </summary>
[Collection(MigrationProcessCollection.Name)]
public sealed class XbzrleProcessTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vmm-xbzrle-proc-").FullName;

    [Fact]
    public void TheVerbMovesARunningDirtyGuestWithDeltaPages()
    {
        using MigrationVmm source = MigrationVmm.StartSource(dir);
        using MigrationVmm destination = MigrationVmm.StartDestination(dir);
        using QmpTestClient client = source.Connect();
        Assert.False(Capability(client, "xbzrle"), "xbzrle is off by default, as in QEMU");
        Assert.Equal(64ul << 20, client.Return("query-migrate-parameters").GetProperty("xbzrle-cache-size").GetUInt64());
        source.WaitForMorePasses(3, from: 0);

        VmmResult verb = PrecopyProcessTests.Verb(source, destination.IncomingUri, "--xbzrle", "--xbzrle-cache-size", "32M");

        Assert.True(verb.ExitCode == 0, $"migrate exited {verb.ExitCode}; stdout: {verb.Stdout} stderr: {verb.Stderr}");
        Assert.True(PrecopyProcessTests.SummaryRow("xbzrle delta pages / bytes", @"[1-9]\d* / [1-9]\d*").IsMatch(verb.Stdout), verb.Stdout);
        Assert.True(PrecopyProcessTests.SummaryRow("xbzrle cache misses / overflows", @"\d+ / 0").IsMatch(verb.Stdout), verb.Stdout);
        Assert.True(Capability(client, "xbzrle"));
        Assert.Equal(32ul << 20, client.Return("query-migrate-parameters").GetProperty("xbzrle-cache-size").GetUInt64());
        JsonElement info = client.Return("query-migrate");
        Assert.Equal("completed", MigrationVmm.Status(info));
        JsonElement cache = info.GetProperty("xbzrle-cache");
        Assert.Equal(32ul << 20, cache.GetProperty("cache-size").GetUInt64());
        Assert.True(cache.GetProperty("pages").GetUInt64() > 0, $"no delta pages: {cache}");
        Assert.True(cache.GetProperty("cache-miss").GetUInt64() >= 4096, $"the dirtied pages went whole once: {cache}");
        Assert.True(cache.GetProperty("bytes").GetUInt64() > 0);
        Assert.Equal(0ul, cache.GetProperty("overflow").GetUInt64());

        destination.WaitForMorePasses(3);
        Assert.Null(destination.StopAndCheckDirtyConsistency());
    }

    /// <summary>
    /// Sparse pages are on by default (the dirty guest's stopped pass goes as sparse pages); --no-sparse-pages turns
    /// them off on the source, and every page goes whole, as an older destination needs.
    /// </summary>
    [Fact]
    public void TheVerbTurnsSparsePagesOff()
    {
        using MigrationVmm source = MigrationVmm.StartSource(dir);
        using MigrationVmm destination = MigrationVmm.StartDestination(dir);
        using QmpTestClient client = source.Connect();
        Assert.True(Capability(client, "sparse-pages"), "sparse-pages is on by default");
        source.WaitForMorePasses(3, from: 0);

        VmmResult verb = PrecopyProcessTests.Verb(source, destination.IncomingUri, "--no-sparse-pages");

        Assert.True(verb.ExitCode == 0, $"migrate exited {verb.ExitCode}; stdout: {verb.Stdout} stderr: {verb.Stderr}");
        Assert.False(Capability(client, "sparse-pages"));
        JsonElement ram = client.Return("query-migrate").GetProperty("ram");
        Assert.Equal(0ul, ram.GetProperty("sparse-pages").GetUInt64());
        Assert.True(ram.GetProperty("transferred").GetUInt64() >= ram.GetProperty("normal").GetUInt64() * 4096, $"a data page did not go whole: {ram}");
        destination.WaitForMorePasses(3);
        Assert.Null(destination.StopAndCheckDirtyConsistency());

        VmmResult refused = VmmProcess.Run(["migrate", "--monitor", source.MonitorPath, "--to", "unix:/tmp/x", "--resume", "--no-sparse-pages"], PrecopyProcessTests.VerbTimeout);
        Assert.Equal(2, refused.ExitCode);
        Assert.Equal("vmm: error: --resume takes only --monitor, --to and --destination-monitor", refused.StderrLines[0]);
    }

    [Fact]
    public void TheCapabilityAndTheCacheSizeAreSetAndCheckedThroughQmp()
    {
        using MigrationVmm source = MigrationVmm.StartSource(dir);
        using QmpTestClient client = source.Connect();
        client.Return("migrate-set-capabilities", new { capabilities = new[] { new { capability = "xbzrle", state = true } } });
        Assert.True(Capability(client, "xbzrle"));
        client.Return("migrate-set-parameters", CacheSize(1 << 20));
        Assert.Equal(1ul << 20, client.Return("query-migrate-parameters").GetProperty("xbzrle-cache-size").GetUInt64());
        Assert.Contains("expects a size from 4096 bytes to 1 GiB", client.Error("migrate-set-parameters", CacheSize(4095)));
        Assert.Contains("expects a size from 4096 bytes to 1 GiB", client.Error("migrate-set-parameters", CacheSize((1ul << 30) + 1)));
        Assert.Equal(1ul << 20, client.Return("query-migrate-parameters").GetProperty("xbzrle-cache-size").GetUInt64());

        VmmResult result = VmmProcess.Run(["migrate", "--monitor", source.MonitorPath, "--to", "unix:/tmp/x", "--xbzrle-cache-size", "1M"], PrecopyProcessTests.VerbTimeout);
        Assert.Equal(2, result.ExitCode);
        Assert.Equal("vmm: error: --xbzrle-cache-size goes with --xbzrle", result.StderrLines[0]);
        result = VmmProcess.Run(["migrate", "--monitor", source.MonitorPath, "--to", "unix:/tmp/x", "--xbzrle", "--xbzrle-cache-size", "2K"], PrecopyProcessTests.VerbTimeout);
        Assert.Equal(2, result.ExitCode);
        Assert.Equal("vmm: error: --xbzrle-cache-size: '2K' is not a size from 4K to 1G", result.StderrLines[0]);
    }

    private static Dictionary<string, object> CacheSize(ulong bytes) => new() { ["xbzrle-cache-size"] = bytes };

    private static bool Capability(QmpTestClient client, string name) =>
        client.Return("query-migrate-capabilities").EnumerateArray()
            .Single(c => c.GetProperty("capability").GetString() == name)
            .GetProperty("state").GetBoolean();

    public void Dispose()
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
            // A process may still hold a socket there for a moment.
        }
    }
}
