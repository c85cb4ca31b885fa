using Vmm.Devices.Interrupts;

namespace Vmm.Devices.Tests;

/// <summary>The 8254 on a clock the test moves by hand.</summary>
public sealed class Pit8254Tests
{
    private const long Tick = 1_000_000_000 / PitChannel.Frequency; // about 838 ns
    private readonly List<int> pulses = [];
    private long now = 1_000_000;
    private readonly Pit8254 pit;

    public Pit8254Tests() => pit = new Pit8254(() => now, pulses.Add);

    private void Program(int channel, byte mode, ushort count)
    {
        pit.Write(3, [(byte)((channel << 6) | 0x30 | (mode << 1))]);
        pit.Write((ushort)channel, [(byte)count]);
        pit.Write((ushort)channel, [(byte)(count >> 8)]);
    }

    private ushort Latched(int channel)
    {
        pit.Write(3, [(byte)(channel << 6)]);
        Span<byte> b = stackalloc byte[1];
        pit.Read((ushort)channel, b);
        byte low = b[0];
        pit.Read((ushort)channel, b);
        return (ushort)(low | (b[0] << 8));
    }

    [Fact]
    public void Mode2FiresIrq0EveryPeriodAndCountsDown()
    {
        Program(0, 2, 1000);
        long period = 1000 * 1_000_000_000L / PitChannel.Frequency;

        Assert.Null(pit.Service() is { } d && d <= now ? d : null);
        Assert.Empty(pulses);
        now += period / 2;
        ushort count = Latched(0);
        Assert.InRange(count, 495, 505);

        now += period;
        pit.Service();
        Assert.Equal([0], pulses);
        now += period;
        pit.Service();
        Assert.Equal([0, 0], pulses);
    }

    [Fact]
    public void ALateServiceDeliversOneEdgeForTheMissedPeriods()
    {
        Program(0, 3, 100);
        now += 50 * 100 * Tick;
        long? next = pit.Service();

        Assert.Equal([0], pulses);
        Assert.True(next > now);
    }

    [Fact]
    public void Mode3CountsDownByTwoTwicePerPeriod()
    {
        Program(0, 3, 1000);
        now += 100 * Tick + 10;
        Assert.InRange(Latched(0), 795, 805);
        now += 500 * Tick;
        Assert.InRange(Latched(0), 795, 805);
    }

    [Fact]
    public void Mode0FiresOnceAtTerminalCount()
    {
        Program(0, 0, 10);
        now += 11 * Tick + 10;
        Assert.Null(pit.Service());
        Assert.Equal([0], pulses);
        now += 1_000_000;
        pit.Service();
        Assert.Equal([0], pulses);
    }

    [Fact]
    public void Channel2IsGatedThroughPort61AndItsOutputShowsThere()
    {
        var port = new SystemControlPort(pit);
        Program(2, 0, 100);
        Span<byte> b = stackalloc byte[1];
        port.Write(0, [0x01]);
        port.Read(0, b);
        Assert.Equal(0, b[0] & 0x20);
        now += 200 * Tick;
        port.Read(0, b);
        Assert.Equal(0x20, b[0] & 0x20);
        Assert.Equal(0x01, b[0] & 0x01);
    }

    [Fact]
    public void StateCarriesTheCountRelativeToTheClock()
    {
        Program(0, 2, 1000);
        now += 300 * Tick;
        byte[] saved = pit.SaveState();

        long later = now + 5_000_000_000; // restored on another host, 5 s later on its clock
        var copy = new Pit8254(() => later, _ => { });
        copy.RestoreState(pit.SectionVersion, saved);
        copy.Write(3, [0x00]);
        Span<byte> b = stackalloc byte[1];
        copy.Read(0, b);
        int low = b[0];
        copy.Read(0, b);
        Assert.InRange(low | (b[0] << 8), 695, 705);
        Assert.Equal(later + (700 * 1_000_000_000L / PitChannel.Frequency), copy.NextDeadline!.Value, 2.0 * Tick);
    }

    private byte ReadPort(int channel)
    {
        Span<byte> b = stackalloc byte[1];
        pit.Read((ushort)channel, b);
        return b[0];
    }

    [Fact]
    public void ReadBackLatchesTheStatusOfTheSelectedCounters()
    {
        Program(0, 2, 1000);
        now += 100 * Tick;

        // 11 1 0 001 0: status only, counter 0. OUT high (mode 2 between pulses), count loaded, low-then-high, mode 2.
        pit.Write(3, [0xE2]);
        Assert.Equal(0xB4, ReadPort(0));

        // After a control word and before its count: null count set; a mode 0 counter's OUT is low.
        pit.Write(3, [0x80 | 0x30]); // channel 2, mode 0
        pit.Write(3, [0xE8]); // status of counter 2
        Assert.Equal(0x70, ReadPort(2));
    }

    [Fact]
    public void ReadBackOfStatusAndCountReturnsTheStatusFirstThenTheFrozenCount()
    {
        Program(0, 2, 1000);
        now += 300 * Tick;

        pit.Write(3, [0xC2]); // count and status, counter 0
        now += 200 * Tick; // the latched count does not move
        Assert.Equal(0xB4, ReadPort(0));
        int count = ReadPort(0) | (ReadPort(0) << 8);
        Assert.InRange(count, 695, 705);

        // Latches consumed: the next reads follow the live count.
        int live = ReadPort(0) | (ReadPort(0) << 8);
        Assert.InRange(live, 495, 505);
    }

    [Fact]
    public void ReadBackLatchesTheCountOfSeveralCountersAtOnce()
    {
        Program(0, 2, 1000);
        Program(2, 2, 3000);
        pit.SetChannel2Gate(true);
        now += 100 * Tick;

        pit.Write(3, [0xDA]); // 11 0 1 101 0: counts of counters 0 and 2
        now += 400 * Tick;
        Assert.InRange(ReadPort(0) | (ReadPort(0) << 8), 895, 905);
        Assert.InRange(ReadPort(2) | (ReadPort(2) << 8), 2895, 2905);
    }

    [Fact]
    public void ALatchedStatusTravelsInThePitSectionAndAVersion1SectionRestores()
    {
        Program(0, 2, 1000);
        pit.Write(3, [0xE2]);
        byte[] saved = pit.SaveState();

        var copy = new Pit8254(() => now, _ => { });
        copy.RestoreState(Pit8254.StateVersion, saved);
        Span<byte> b = stackalloc byte[1];
        copy.Read(0, b);
        Assert.Equal(0xB4, b[0]);

        // Version 1 ended after the deadline: three (latched, status) pairs fewer.
        var old = new Pit8254(() => now, _ => { });
        old.RestoreState(1, saved[..^6]);
        old.Write(3, [0x00]);
        old.Read(0, b);
        int low = b[0];
        old.Read(0, b);
        Assert.InRange(low | (b[0] << 8), 995, 1000);
    }
}
