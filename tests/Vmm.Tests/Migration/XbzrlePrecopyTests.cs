using Vmm.Machine;
using Vmm.Migration;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// Precopy with the xbzrle capability, between two machines in this process over a real Unix socket: the dirty-16m
/// guest increments the first byte of each page of [1 MiB, 17 MiB) pass after pass, so pages go again and again, as
/// deltas against what was sent before. The rest of those pages holds random bytes (written before the guest starts),
/// so a delta applied at the wrong place or onto the wrong bytes shows; and the first bytes pass DESIGN §7's check.
/// </summary>
public sealed class XbzrlePrecopyTests : IDisposable
{
    private const ulong Memory = 128 << 20;
    private const ulong DirtyBase = 1 << 20;
    private const ulong Dirtied = 16 << 20;

    /// <summary>Static random pages elsewhere: sent once, whole, cached, never again.</summary>
    private const ulong StaticBase = 24 << 20;
    private const ulong StaticLength = 4 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-xbzrle-").FullName;

    /// <summary>
    /// 64 MiB (the default) holds every dirtied page; 1 MiB holds 256 of the 4096, so pages keep evicting each other and
    /// go whole (cache misses) — either way nothing is lost.
    /// </summary>
    [Theory]
    [InlineData(64ul << 20)]
    [InlineData(1ul << 20)]
    public void ADirtyGuestMovesWithDeltasWithoutLosingAByte(ulong cacheSize)
    {
        using TestMachine source = TestMachine.Create(Memory, RamBackend.Anonymous, "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory, RamBackend.Anonymous);
        byte[] fill = new byte[Dirtied];
        new Random(15).NextBytes(fill);
        for (ulong page = 0; page < Dirtied / 4096; page++)
        {
            // Byte 0 of each page is the guest's; the rest is ours and must arrive as it is.
            fill[page * 4096] = 0;
        }

        source.Machine.Memory.Write(DirtyBase, fill);
        source.Machine.Memory.Write(StaticBase, fill.AsSpan(0, (int)StaticLength));
        source.Machine.Migration.SetCapabilities(source.Machine.Migration.Capabilities with { Xbzrle = true });
        source.Machine.Migration.SetParameters(source.Machine.Migration.Parameters with { XbzrleCacheSize = cacheSize });
        source.Machine.Start();
        source.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the source");

        MigrationStats stats = PrecopyTests.Migrate(source, destination, Path.Combine(dir, "m.sock"));

        Assert.Equal(MigrationStatus.Completed, stats.Status);
        Assert.Equal(cacheSize, stats.XbzrleCacheSize);
        Assert.True(stats.XbzrleCacheMisses >= (Dirtied + StaticLength) / 4096, $"only {stats.XbzrleCacheMisses} misses: every page was sent whole at least once");
        if (cacheSize >= Dirtied + StaticLength + (1 << 20))
        {
            // Each dirtied page changes in one byte per pass: three bytes of delta (varints 0 and 1, the byte). How many
            // pages go again after the first pass depends on how far the guest got (a page written between its dirty
            // bit's clearing and its copy goes again unchanged), so only that some did.
            Assert.True(stats.XbzrlePages > 0, "no delta pages");
            Assert.True(stats.XbzrleBytes <= stats.XbzrlePages * 3, $"{stats.XbzrleBytes} bytes for {stats.XbzrlePages} deltas");
            Assert.Equal(0ul, stats.XbzrleOverflows);
        }

        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));

        byte[] arrived = new byte[Dirtied];
        destination.Machine.Memory.Read(DirtyBase, arrived);
        for (ulong page = 0; page < Dirtied / 4096; page++)
        {
            arrived[page * 4096] = 0;
        }

        AssertSame(fill, arrived, DirtyBase);
        byte[] staticArrived = new byte[StaticLength];
        destination.Machine.Memory.Read(StaticBase, staticArrived);
        AssertSame(fill.AsSpan(0, (int)StaticLength).ToArray(), staticArrived, StaticBase);
    }

    /// <summary>Off by default, as QEMU's: no cache, no deltas, no xbzrle-cache figures.</summary>
    [Fact]
    public void WithoutTheCapabilityNothingGoesAsADelta()
    {
        using TestMachine source = TestMachine.Create(Memory, RamBackend.Anonymous, "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory, RamBackend.Anonymous);
        Assert.False(source.Machine.Migration.Capabilities.Xbzrle);
        Assert.Equal(64ul << 20, source.Machine.Migration.Parameters.XbzrleCacheSize);
        source.Machine.Start();
        source.WaitForSerial(s => s.Count(c => c == 'B') >= 2, "two passes on the source");

        MigrationStats stats = PrecopyTests.Migrate(source, destination, Path.Combine(dir, "off.sock"));

        Assert.Equal(MigrationStatus.Completed, stats.Status);
        Assert.Equal(0ul, stats.XbzrleCacheSize);
        Assert.Equal(0ul, stats.XbzrlePages + stats.XbzrleCacheMisses);
        Assert.False(Vmm.Qmp.Commands.MigrationCommands.Describe(stats).ContainsKey("xbzrle-cache"));
    }

    private static void AssertSame(byte[] expected, byte[] actual, ulong baseAddress)
    {
        int differs = expected.AsSpan().CommonPrefixLength(actual);
        Assert.True(differs == expected.Length, $"guest memory differs at 0x{baseAddress + (ulong)differs:x}: 0x{(differs < actual.Length ? actual[differs] : 0):x2} instead of 0x{(differs < expected.Length ? expected[differs] : 0):x2}");
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);
}
