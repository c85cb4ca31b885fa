using Vmm.Devices;

namespace Vmm.Devices.Tests;

public sealed class MmioBusTests
{
    private const ulong Apic = 0xFEE0_0000;

    [Fact]
    public void ReadAndWrite_RouteToOwningDeviceWithRelativeOffset()
    {
        var bus = new MmioBus();
        var device = new RecordingMmioDevice(fill: 0x00);
        bus.Register(Apic, 0x1000, device, "lapic");

        Span<byte> dword = stackalloc byte[4];
        bus.Read(Apic + 0x30, dword);
        bus.Write(Apic + 0xB0, [0, 0, 0, 0]);

        Assert.Equal((0x30UL, 4), Assert.Single(device.Reads));
        Assert.Equal([0x30, 0x31, 0x32, 0x33], dword.ToArray());
        var write = Assert.Single(device.Writes);
        Assert.Equal(0xB0UL, write.Offset);
        Assert.Equal([0, 0, 0, 0], write.Data);
    }

    [Fact]
    public void MultiByteAccesses_ReachDeviceWhole_EvenAtTheLastByte()
    {
        var bus = new MmioBus();
        var device = new RecordingMmioDevice(fill: 0x00);
        bus.Register(0x1000, 0x10, device, "regs");

        Span<byte> qword = stackalloc byte[8];
        bus.Read(0x100F, qword);
        bus.Write(0x1008, [1, 2, 3, 4, 5, 6, 7, 8]);

        Assert.Equal((0xFUL, 8), Assert.Single(device.Reads));
        Assert.Equal(0x0F, qword[0]);
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8], Assert.Single(device.Writes).Data);
    }

    [Fact]
    public void ManyRanges_LookupFindsEachAndGapsAreUnclaimed()
    {
        var bus = new MmioBus();
        var devices = new RecordingMmioDevice[100];

        // Register in a scrambled order so the bus, not the caller, has to keep them sorted.
        foreach (int i in Enumerable.Range(0, 100).OrderBy(i => (i * 37) % 100))
        {
            devices[i] = new RecordingMmioDevice(fill: (byte)i);
            bus.Register(0x1_0000_0000UL + (ulong)i * 0x2000, 0x1000, devices[i], $"dev{i}");
        }

        Span<byte> b = stackalloc byte[1];
        for (int i = 0; i < 100; i++)
        {
            ulong start = 0x1_0000_0000UL + (ulong)i * 0x2000;
            bus.Read(start, b);
            Assert.Equal((byte)i, b[0]);
            bus.Read(start + 0xFFF, b);
            Assert.Equal((byte)(i ^ 0xFF), b[0]);
            bus.Read(start + 0x1000, b); // the gap after each device
            Assert.Equal(0xFF, b[0]);
            Assert.Equal(2, devices[i].Reads.Count);
        }

        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"dev{i}"), bus.Ranges.Select(r => r.Name));
    }

    [Theory]
    [InlineData(0xD000UL, 0x1000UL)] // identical
    [InlineData(0xD800UL, 0x10UL)] // inside
    [InlineData(0xC000UL, 0x3000UL)] // contains
    [InlineData(0xC000UL, 0x1001UL)] // overlaps the first byte from below
    [InlineData(0xDFFFUL, 0x1000UL)] // overlaps the last byte from above
    public void Register_Overlap_ThrowsNamingBothDevicesAndRanges(ulong baseAddress, ulong length)
    {
        var bus = new MmioBus();
        bus.Register(0xD000, 0x1000, new RecordingMmioDevice(), "vga-window");

        var error = Assert.Throws<InvalidOperationException>(
            () => bus.Register(baseAddress, length, new RecordingMmioDevice(), "intruder"));

        Assert.Contains("'intruder'", error.Message);
        Assert.Contains("'vga-window'", error.Message);
        Assert.Contains("0xD000-0xDFFF", error.Message);
        Assert.Contains($"0x{baseAddress:X}-", error.Message);
        Assert.Single(bus.Ranges);
    }

    [Fact]
    public void Register_Overlap_IsDetectedWhicheverIsRegisteredFirst()
    {
        var low = new MmioBus();
        low.Register(0x1000, 0x1000, new RecordingMmioDevice(), "low");
        Assert.Throws<InvalidOperationException>(() => low.Register(0x1FFF, 0x1000, new RecordingMmioDevice(), "high"));

        var high = new MmioBus();
        high.Register(0x1FFF, 0x1000, new RecordingMmioDevice(), "high");
        Assert.Throws<InvalidOperationException>(() => high.Register(0x1000, 0x1000, new RecordingMmioDevice(), "low"));
    }

    [Fact]
    public void Register_AdjacentRanges_AreAllowed()
    {
        var bus = new MmioBus();
        bus.Register(0x2000, 0x1000, new RecordingMmioDevice(), "middle");
        bus.Register(0x1000, 0x1000, new RecordingMmioDevice(), "below");
        bus.Register(0x3000, 0x1000, new RecordingMmioDevice(), "above");

        Assert.Equal(
            [(0x1000UL, 0x1000UL, "below"), (0x2000UL, 0x1000UL, "middle"), (0x3000UL, 0x1000UL, "above")],
            bus.Ranges);
    }

    [Fact]
    public void Register_ZeroLength_ThrowsArgumentException()
    {
        var bus = new MmioBus();
        Assert.Throws<ArgumentException>(() => bus.Register(0x1000, 0, new RecordingMmioDevice(), "empty"));
        Assert.Empty(bus.Ranges);
    }

    [Theory]
    [InlineData(ulong.MaxValue, 2UL)]
    [InlineData(0xFFFF_FFFF_FFFF_F000UL, 0x1001UL)]
    [InlineData(2UL, ulong.MaxValue)]
    public void Register_PastEndOfAddressSpace_ThrowsArgumentException(ulong baseAddress, ulong length)
    {
        var bus = new MmioBus();
        var error = Assert.Throws<ArgumentException>(() => bus.Register(baseAddress, length, new RecordingMmioDevice(), "wraps"));
        Assert.Contains("wraps", error.Message);
        Assert.Empty(bus.Ranges);
    }

    [Fact]
    public void Register_EdgesOfAddressSpace_Work()
    {
        var bus = new MmioBus();
        var top = new RecordingMmioDevice(fill: 0x77);
        var bottom = new RecordingMmioDevice(fill: 0x33);
        bus.Register(0xFFFF_FFFF_FFFF_F000UL, 0x1000, top, "top");
        bus.Register(0, 0x1000, bottom, "bottom");

        Span<byte> b = stackalloc byte[1];
        bus.Read(ulong.MaxValue, b);
        Assert.Equal(0x77 ^ 0xFF, b[0]);
        Assert.Equal(0xFFFUL, top.Reads[^1].Offset);
        bus.Read(0, b);
        Assert.Equal(0x33, b[0]);
        bus.Read(0x1000, b);
        Assert.Equal(0xFF, b[0]);
        bus.Read(0xFFFF_FFFF_FFFF_EFFFUL, b);
        Assert.Equal(0xFF, b[0]);
    }

    [Fact]
    public void Register_WholeAddressSpaceMinusOne_IsAccepted()
    {
        var bus = new MmioBus();
        bus.Register(1, ulong.MaxValue, new RecordingMmioDevice(fill: 0x10), "everything");

        Span<byte> b = stackalloc byte[1];
        bus.Read(ulong.MaxValue, b);
        Assert.Equal((byte)(0x10 ^ 0xFE), b[0]);
        bus.Read(0, b);
        Assert.Equal(0xFF, b[0]);
    }

    [Fact]
    public void Register_RejectsEmptyNameAndNullDevice()
    {
        var bus = new MmioBus();
        Assert.Throws<ArgumentException>(() => bus.Register(0x1000, 1, new RecordingMmioDevice(), ""));
        Assert.Throws<ArgumentNullException>(() => bus.Register(0x1000, 1, null!, "null"));
    }

    [Fact]
    public void Unclaimed_ReadsFF_WritesIgnored()
    {
        var bus = new MmioBus();
        var device = new RecordingMmioDevice();
        bus.Register(0x1000, 0x1000, device, "dev");

        Span<byte> data = [1, 2, 3, 4, 5, 6, 7, 8];
        bus.Read(0x0FFF, data);
        bus.Write(0x2000, [9, 9]);

        Assert.Equal(Enumerable.Repeat((byte)0xFF, 8), data.ToArray());
        Assert.Empty(device.Reads);
        Assert.Empty(device.Writes);
    }

    [Fact]
    public void UnclaimedCallback_FiresOncePerDistinctAddress_ForReadsAndWrites()
    {
        var reported = new List<ulong>();
        var bus = new MmioBus(reported.Add);
        bus.Register(0x1000, 0x1000, new RecordingMmioDevice(), "dev");

        Span<byte> b = stackalloc byte[4];
        bus.Read(0xB8000, b);
        bus.Write(0xB8000, [1]);
        bus.Read(0xB8000, b);
        bus.Write(0xFED0_0000, [1]);
        bus.Read(0xFED0_0000, b);
        bus.Read(0x1800, b); // claimed: not reported

        Assert.Equal([0xB8000UL, 0xFED0_0000UL], reported);
    }

    [Fact]
    public void UnclaimedCallback_StopsReportingNewAddressesPastTheCap()
    {
        int calls = 0;
        var bus = new MmioBus(_ => calls++);

        Span<byte> b = stackalloc byte[1];
        for (ulong address = 0; address < MmioBus.MaxReportedUnclaimedAddresses + 100; address++)
        {
            bus.Read(address, b);
            bus.Read(address, b);
        }

        Assert.Equal(MmioBus.MaxReportedUnclaimedAddresses, calls);
    }

    [Fact]
    public void Unregister_RemovesAllRangesOfDevice_AndUnknownDeviceIsNoOp()
    {
        var bus = new MmioBus();
        var leaving = new RecordingMmioDevice(fill: 0x10);
        var staying = new RecordingMmioDevice(fill: 0x20);
        bus.Register(0x1000, 0x100, leaving, "bar0");
        bus.Register(0x3000, 0x100, leaving, "bar1");
        bus.Register(0x2000, 0x100, staying, "other");

        bus.Unregister(new RecordingMmioDevice());
        Assert.Equal(3, bus.Ranges.Count);

        bus.Unregister(leaving);

        Span<byte> b = stackalloc byte[1];
        bus.Read(0x1000, b);
        Assert.Equal(0xFF, b[0]);
        bus.Write(0x3000, [1]);
        bus.Read(0x2000, b);
        Assert.Equal(0x20, b[0]);
        Assert.Empty(leaving.Reads);
        Assert.Empty(leaving.Writes);
        Assert.Equal([(0x2000UL, 0x100UL, "other")], bus.Ranges);

        bus.Register(0x1000, 0x1000, new RecordingMmioDevice(), "reuses-freed-space");
        Assert.Equal(2, bus.Ranges.Count);
    }

    [Fact]
    public void ReadAndWrite_DoNotAllocate()
    {
        var bus = new MmioBus(_ => { });
        for (ulong i = 0; i < 16; i++)
        {
            bus.Register(0x10_0000 * (i + 1), 0x1000, new NullMmioDevice(), $"dev{i}");
        }

        Span<byte> b = stackalloc byte[8];
        ReadOnlySpan<byte> w = [1, 2, 3, 4];
        for (int i = 0; i < 100; i++)
        {
            bus.Read(0x50_0010, b);
            bus.Write(0xA0_0FFC, w);
            bus.Read(0x10, b);
            bus.Write(0x10, w);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
        {
            bus.Read(0x50_0010, b);
            bus.Write(0xA0_0FFC, w);
            bus.Read(0x10, b);
            bus.Write(0x10, w);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public async Task ConcurrentRegistration_ReadersSeeEitherDeviceOrUnclaimed()
    {
        var bus = new MmioBus();
        var device = new NullMmioDevice(value: 0x3C);
        bus.Register(0x0, 0x1000, new NullMmioDevice(), "steady");
        using var stop = new CancellationTokenSource();
        int unexpected = 0;
        int reads = 0;

        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            Span<byte> b = stackalloc byte[1];
            for (int n = 1; !stop.IsCancellationRequested; n++)
            {
                // The unclaimed path inlines to a loop with no call and no GC poll, which a GC cannot suspend
                // (the runtime only polls loops it believes call nothing), so the writer's allocations would hang.
                // A periodic yield gives every iteration path a safe point.
                if ((n & 63) == 0)
                {
                    Thread.Yield();
                }

                bus.Read(0x8000, b);
                if (b[0] is not (0xFF or 0x3C))
                {
                    Interlocked.Increment(ref unexpected);
                }

                Interlocked.Increment(ref reads);
            }
        })).ToArray();

        var deadline = DateTime.UtcNow.AddSeconds(10);
        for (int i = 0; (i < 2000 || Volatile.Read(ref reads) < 100_000) && DateTime.UtcNow < deadline; i++)
        {
            bus.Register(0x8000, 0x1000, device, "flapping");
            bus.Unregister(device);
        }

        stop.Cancel();
        await Task.WhenAll(readers);

        Assert.Equal(0, unexpected);
        Assert.True(reads >= 100_000, $"only {reads} reads raced the registrations");
        Assert.Equal([(0x0UL, 0x1000UL, "steady")], bus.Ranges);
    }

    private sealed class NullMmioDevice(byte value = 0) : IMmioDevice
    {
        public void Read(ulong offset, Span<byte> data) => data.Fill(value);

        public void Write(ulong offset, ReadOnlySpan<byte> data)
        {
        }
    }
}
