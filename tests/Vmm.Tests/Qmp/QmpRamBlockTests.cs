using System.Text.Json;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Qmp;

/// <summary>query-ram-blocks, ram-resize, ram-discard and ram-remap on a spin guest with an extra resizable block.</summary>
[Collection(MonitorCollection.Name)]
public class QmpRamBlockTests
{
    private const ulong ExtraBase = 0x4000000;
    private const ulong CounterPage = 0x6000;

    [Fact]
    public void QueryRamBlocksListsEveryBlockWithItsGeometry()
    {
        using MonitoredVmm vmm = StartWithExtraBlock();
        using QmpTestClient client = vmm.Connect();

        JsonElement[] blocks = [.. client.Return("query-ram-blocks").EnumerateArray()];
        Assert.Equal(["pc.ram", "extra"], blocks.Select(b => b.GetProperty("name").GetString()));
        JsonElement extra = blocks[1];
        Assert.Equal(ExtraBase, extra.GetProperty("base").GetUInt64());
        Assert.Equal(4ul << 20, extra.GetProperty("used").GetUInt64());
        Assert.Equal(8ul << 20, extra.GetProperty("max").GetUInt64());
        Assert.Equal(4096ul, extra.GetProperty("page-size").GetUInt64());
        Assert.Equal("shared", extra.GetProperty("backend").GetString());
        Assert.True(extra.GetProperty("resizable").GetBoolean());
    }

    [Fact]
    public void RamResizeGrowsAndShrinksTheUsedLengthWithinMax()
    {
        using MonitoredVmm vmm = StartWithExtraBlock();
        using QmpTestClient client = vmm.Connect();
        string file = Path.Combine(vmm.Directory, "extra.bin");

        // The last MiB of the grown block is not RAM yet...
        Assert.Contains("is not RAM", client.Error("pmemsave", new { val = ExtraBase + (7ul << 20), size = 4096, filename = file }));

        client.Return("ram-resize", new { name = "extra", size = 8ul << 20 });
        Assert.Equal(8ul << 20, Block(client, "extra").GetProperty("used").GetUInt64());
        client.Return("pmemsave", new { val = ExtraBase + (7ul << 20), size = 4096, filename = file });
        Assert.Equal(new byte[4096], File.ReadAllBytes(file));

        client.Return("ram-resize", new { name = "extra", size = 1ul << 20 });
        Assert.Equal(1ul << 20, Block(client, "extra").GetProperty("used").GetUInt64());
        Assert.Contains("is not RAM", client.Error("pmemsave", new { val = ExtraBase + (1ul << 20), size = 1, filename = file }));
        Assert.Equal("running", client.Return("query-status").GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("extra", 16ul << 20, "must be a non-zero multiple")]
    [InlineData("extra", 0ul, "must be a non-zero multiple")]
    [InlineData("extra", 4097ul, "must be a non-zero multiple")]
    [InlineData("pc.ram", 8ul << 20, "is not resizable")]
    [InlineData("nosuch", 4096ul, "no RAM block named 'nosuch'")]
    public void RamResizeRefusesWhatCannotBe(string name, ulong size, string expected)
    {
        using MonitoredVmm vmm = StartWithExtraBlock();
        using QmpTestClient client = vmm.Connect();
        string error = client.Error("ram-resize", new { name, size });
        Assert.Contains(expected, error);
        Assert.DoesNotContain("(Parameter", error);
    }

    [Fact]
    public void RamDiscardLeavesTheRangeReadingZeros()
    {
        using MonitoredVmm vmm = StartWithExtraBlock();
        using QmpTestClient client = vmm.Connect();
        QmpRunControlTests.WaitUntil(() => vmm.ReadCounter(client) > 1000, "the spin guest never started counting");

        client.Return("stop");
        Assert.NotEqual(0u, vmm.ReadCounter(client));
        client.Return("ram-discard", new { name = "pc.ram", offset = CounterPage, length = 4096 });
        Assert.Equal(0u, vmm.ReadCounter(client));

        // The guest carries on from the zeroed counter.
        client.Return("cont");
        QmpRunControlTests.WaitUntil(() => vmm.ReadCounter(client) > 1000, "the guest did not count on after the discard");
        Assert.Contains("must be non-empty, aligned", client.Error("ram-discard", new { name = "pc.ram", offset = 100, length = 4096 }));
        Assert.Contains("inside its used length", client.Error("ram-discard", new { name = "extra", offset = 4ul << 20, length = 4096 }));
    }

    [Fact]
    public void RamRemapReplacesTheRangeWithFreshMemory()
    {
        using MonitoredVmm vmm = StartWithExtraBlock();
        using QmpTestClient client = vmm.Connect();
        QmpRunControlTests.WaitUntil(() => vmm.ReadCounter(client) > 1000, "the spin guest never started counting");

        client.Return("stop");
        client.Return("ram-remap", new { name = "pc.ram", offset = CounterPage, length = 4096 });
        Assert.Equal(0u, vmm.ReadCounter(client));
        client.Return("cont");
        QmpRunControlTests.WaitUntil(() => vmm.ReadCounter(client) > 1000, "the guest did not count on after the remap");

        client.Return("ram-remap", new { name = "extra", offset = 0, length = 1ul << 20 });
        Assert.Contains("no RAM block named", client.Error("ram-remap", new { name = "", offset = 0, length = 4096 }));
        Assert.Equal("Parameter 'length' is missing", client.Error("ram-remap", new { name = "extra", offset = 0 }));
    }

    private static MonitoredVmm StartWithExtraBlock() =>
        MonitoredVmm.Start("spin", "--ram-block", $"name=extra,gpa=0x{ExtraBase:x},size=4M,max=8M,backend=shared");

    private static JsonElement Block(QmpTestClient client, string name) =>
        client.Return("query-ram-blocks").EnumerateArray().Single(b => b.GetProperty("name").GetString() == name);
}
