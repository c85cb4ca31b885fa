using Vmm.Configuration;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Ram;

/// <summary>
/// Grow, shrink and MMIO holes as the guest sees them: the ram-top guest probes the top of RAM before every pass and
/// prints it with what it reads beyond it (README "Devices": past RAM reads are all-ones and writes are ignored).
/// </summary>
[Collection(RamCollection.Name)]
public class ResizeGuestTests
{
    private const ulong MiB = RamCollection.MiB;
    private const string Beyond = ", beyond FFFFFFFF";

    // guests/Builder/RamTop.cs
    private const string Banner = "ram-top\r\n";
    private const uint BeyondMarker = 0x0BAD_C0DE;

    [Theory]
    [InlineData(RamBackend.Anonymous)]
    [InlineData(RamBackend.Shared)]
    [InlineData(RamBackend.Hugetlbfs)]
    public void GuestSeesAResizableBlockGrowAcrossAResetAndShrinkWhileRunning(RamBackend backend)
    {

        // pc.ram [0, 16M) and right after it a resizable block [16M, 16M + 8M), room for 16M.
        using RamMachine m = RamMachine.Create("ram-top", backend, 16 * MiB, new RamBlockOption("extra", 16 * MiB, 8 * MiB, 16 * MiB, backend));
        RamBlock extra = m.Block("extra");
        m.Machine.Start();
        string text = WaitForTopLines(m, 0, 24, 3);
        Assert.StartsWith(Banner, text);
        Assert.All(RamMachine.LinesSince(text, Banner.Length), line => Assert.Equal($"top 24 MiB{Beyond}", line));

        // Grow to 16M and reset: the guest boots again and finds 32 MiB.
        m.Machine.Stop();
        m.Machine.ResizeRamBlock("extra", 16 * MiB);
        Assert.Equal(16 * MiB, extra.UsedLength);
        m.Machine.Reset();
        int mark = m.Serial.Text.Length;
        m.Machine.Continue();
        text = WaitForTopLines(m, mark, 32, 3);
        Assert.StartsWith(Banner, text[mark..]);
        Assert.All(RamMachine.LinesSince(text, mark + Banner.Length), line => Assert.Equal($"top 32 MiB{Beyond}", line));

        // Shrink back to 8M while it runs: from some pass on it sees 24 MiB again, and never anything in between.
        mark = m.Serial.Text.Length;
        m.Machine.ResizeRamBlock("extra", 8 * MiB);
        text = WaitForTopLines(m, mark, 24, 5);
        AssertSwitchesOnce(RamMachine.LinesSince(text, mark).Skip(1).ToArray(), from: 32, to: 24);

        // Past `used` the guest's writes went nowhere: grown again, the tail [8M, 16M) holds only zeros — not the
        // 0x0BADC0DE it wrote at 24 MiB every pass, nor the increments of the pass that was running at the shrink.
        m.Machine.Stop();
        m.Machine.ResizeRamBlock("extra", 16 * MiB);
        Assert.True(RamMachine.IsZero(extra, 8 * MiB, 8 * MiB), "writes beyond the used length reached the block");
        Assert.Equal(0u, BitConverter.ToUInt32(extra.GetSpan(8 * MiB, 4)));

        // And growing while it runs is seen at the next probe, without a reset.
        mark = m.Serial.Text.Length;
        m.Machine.Continue();
        text = WaitForTopLines(m, mark, 32, 3);
        AssertSwitchesOnce(RamMachine.LinesSince(text, mark).Skip(1).ToArray(), from: 24, to: 32);
        Assert.False(m.Machine.Exited.IsCompleted);
    }

    [Fact]
    public void GuestSeesAnMmioHoleAsTheTopOfRamUntilItIsRemoved()
    {
        using RamMachine m = RamMachine.Create("ram-top", RamBackend.Anonymous, 16 * MiB, new RamBlockOption("extra", 16 * MiB, 8 * MiB, 16 * MiB, RamBackend.Anonymous));
        m.Machine.Start();
        WaitForTopLines(m, 0, 24, 2);

        // A hole at [8M, 10M) of pc.ram: the probe stops there; the guest's marker write into it is ignored.
        int mark = m.Serial.Text.Length;
        m.Machine.AddMmioHole("pc.ram", 8 * MiB, 2 * MiB);
        string text = WaitForTopLines(m, mark, 8, 3);
        AssertSwitchesOnce(RamMachine.LinesSince(text, mark).Skip(1).ToArray(), from: 24, to: 8);
        m.Machine.Stop();
        Assert.NotEqual(BeyondMarker, BitConverter.ToUInt32(m.PcRam.GetSpan(8 * MiB, 4)));

        mark = m.Serial.Text.Length;
        m.Machine.Continue();
        m.Machine.RemoveMmioHole("pc.ram", 8 * MiB);
        text = WaitForTopLines(m, mark, 24, 3);
        AssertSwitchesOnce(RamMachine.LinesSince(text, mark).Skip(1).ToArray(), from: 8, to: 24);
    }

    /// <summary>Waits until at least <paramref name="count"/> lines "top <paramref name="mib"/> MiB…" follow <paramref name="mark"/>.</summary>
    private static string WaitForTopLines(RamMachine m, int mark, int mib, int count) =>
        m.WaitForSerial(
            text => RamMachine.LinesSince(text, mark).Count(line => line.StartsWith($"top {mib} MiB", StringComparison.Ordinal)) >= count,
            $"{count} lines 'top {mib} MiB'");

    /// <summary>Lines go from "top <paramref name="from"/>" to "top <paramref name="to"/>" once, never back, never anything else.</summary>
    private static void AssertSwitchesOnce(string[] lines, int from, int to)
    {
        string old = $"top {from} MiB{Beyond}";
        string now = $"top {to} MiB{Beyond}";
        int firstNew = Array.IndexOf(lines, now);
        Assert.True(firstNew >= 0, $"no '{now}' in: {string.Join(" | ", lines)}");
        Assert.All(lines[..firstNew], line => Assert.Equal(old, line));
        Assert.All(lines[firstNew..], line => Assert.Equal(now, line));
    }
}
