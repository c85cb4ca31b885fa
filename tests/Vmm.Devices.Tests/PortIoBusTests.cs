using Vmm.Devices;

namespace Vmm.Devices.Tests;

public sealed class PortIoBusTests
{
    [Fact]
    public void Read_RoutesToOwningDeviceWithOffsetRelativeToBase()
    {
        var bus = new PortIoBus();
        var device = new RecordingPortDevice(fill: 0x50);
        bus.Register(0x3F8, 8, device, "uart");

        Span<byte> data = stackalloc byte[1];
        bus.Read(0x3FD, data);

        Assert.Equal((ushort)5, Assert.Single(device.Reads).Offset);
        Assert.Equal(0x50 ^ 5, data[0]);
    }

    [Fact]
    public void Write_RoutesToOwningDeviceWithOffsetAndBytes()
    {
        var bus = new PortIoBus();
        var device = new RecordingPortDevice();
        bus.Register(0x70, 2, device, "cmos");

        bus.Write(0x71, [0x42]);

        var write = Assert.Single(device.Writes);
        Assert.Equal((ushort)1, write.Offset);
        Assert.Equal([0x42], write.Data);
    }

    [Fact]
    public void MultiByteAccesses_ReachDeviceWhole()
    {
        var bus = new PortIoBus();
        var device = new RecordingPortDevice(fill: 0x00);
        bus.Register(0xCF8, 4, device, "pci-config-address");

        Span<byte> dword = stackalloc byte[4];
        bus.Read(0xCF8, dword);
        bus.Write(0xCF8, [0x01, 0x02, 0x03, 0x80]);
        bus.Write(0xCFA, [0xAA, 0xBB]);

        Assert.Equal([0, 1, 2, 3], dword.ToArray());
        Assert.Equal(((ushort)0, 4), Assert.Single(device.Reads));
        Assert.Equal(2, device.Writes.Count);
        Assert.Equal((ushort)0, device.Writes[0].Offset);
        Assert.Equal([0x01, 0x02, 0x03, 0x80], device.Writes[0].Data);
        Assert.Equal((ushort)2, device.Writes[1].Offset);
        Assert.Equal([0xAA, 0xBB], device.Writes[1].Data);
    }

    [Fact]
    public void AccessStartingAtLastPort_IsRoutedByItsFirstPort()
    {
        var bus = new PortIoBus();
        var device = new RecordingPortDevice(fill: 0x00);
        bus.Register(0x60, 1, device, "kbd");

        Span<byte> word = stackalloc byte[2];
        bus.Read(0x60, word);

        Assert.Equal(((ushort)0, 2), Assert.Single(device.Reads));
        Assert.Equal([0, 1], word.ToArray());
    }

    [Fact]
    public void TwoDevices_EachGetOnlyTheirOwnPorts()
    {
        var bus = new PortIoBus();
        var first = new RecordingPortDevice(fill: 0x10);
        var second = new RecordingPortDevice(fill: 0x20);
        bus.Register(0x100, 4, first, "first");
        bus.Register(0x104, 4, second, "second");

        Span<byte> b = stackalloc byte[1];
        bus.Read(0x103, b);
        Assert.Equal(0x10 ^ 3, b[0]);
        bus.Read(0x104, b);
        Assert.Equal(0x20 ^ 0, b[0]);

        Assert.Equal((ushort)3, Assert.Single(first.Reads).Offset);
        Assert.Equal((ushort)0, Assert.Single(second.Reads).Offset);
    }

    [Theory]
    [InlineData(0x3F8, 8)] // identical
    [InlineData(0x3FC, 1)] // inside
    [InlineData(0x3F0, 16)] // contains
    [InlineData(0x3F0, 9)] // overlaps the first port from below
    [InlineData(0x3FF, 4)] // overlaps the last port from above
    public void Register_Overlap_ThrowsNamingBothDevicesAndRanges(int basePort, int length)
    {
        var bus = new PortIoBus();
        bus.Register(0x3F8, 8, new RecordingPortDevice(), "uart");

        var error = Assert.Throws<InvalidOperationException>(
            () => bus.Register((ushort)basePort, (ushort)length, new RecordingPortDevice(), "intruder"));

        Assert.Contains("'intruder'", error.Message);
        Assert.Contains("'uart'", error.Message);
        Assert.Contains("0x03F8-0x03FF", error.Message);
        Assert.Contains($"0x{basePort:X4}", error.Message);
    }

    [Fact]
    public void Register_Overlap_IsDetectedWhicheverIsRegisteredFirst()
    {
        var low = new PortIoBus();
        low.Register(0x10, 8, new RecordingPortDevice(), "low");
        Assert.Throws<InvalidOperationException>(() => low.Register(0x17, 8, new RecordingPortDevice(), "high"));

        var high = new PortIoBus();
        high.Register(0x17, 8, new RecordingPortDevice(), "high");
        Assert.Throws<InvalidOperationException>(() => high.Register(0x10, 8, new RecordingPortDevice(), "low"));
    }

    [Fact]
    public void Register_Overlap_WithEitherNeighbourAmongMany_IsDetected()
    {
        var bus = new PortIoBus();
        bus.Register(0x10, 4, new RecordingPortDevice(), "a");
        bus.Register(0x20, 4, new RecordingPortDevice(), "b");
        bus.Register(0x30, 4, new RecordingPortDevice(), "c");

        var intoB = Assert.Throws<InvalidOperationException>(() => bus.Register(0x18, 9, new RecordingPortDevice(), "x"));
        Assert.Contains("'b'", intoB.Message);
        var fromB = Assert.Throws<InvalidOperationException>(() => bus.Register(0x23, 2, new RecordingPortDevice(), "y"));
        Assert.Contains("'b'", fromB.Message);
        Assert.Equal(3, bus.Ranges.Count);
    }

    [Fact]
    public void Register_AdjacentRangesOnBothSides_AreAllowed()
    {
        var bus = new PortIoBus();
        bus.Register(0x20, 0x10, new RecordingPortDevice(), "middle");
        bus.Register(0x10, 0x10, new RecordingPortDevice(), "below");
        bus.Register(0x30, 0x10, new RecordingPortDevice(), "above");

        Assert.Equal(
            [((ushort)0x10, (ushort)0x10, "below"), ((ushort)0x20, (ushort)0x10, "middle"), ((ushort)0x30, (ushort)0x10, "above")],
            bus.Ranges);
    }

    [Fact]
    public void Register_ZeroLength_ThrowsArgumentException()
    {
        var bus = new PortIoBus();
        Assert.Throws<ArgumentException>(() => bus.Register(0x80, 0, new RecordingPortDevice(), "empty"));
        Assert.Empty(bus.Ranges);
    }

    [Theory]
    [InlineData(0xFFFF, 2)]
    [InlineData(0xFFF0, 0x11)]
    [InlineData(0x0002, 0xFFFF)]
    public void Register_PastPortFFFF_ThrowsArgumentException(int basePort, int length)
    {
        var bus = new PortIoBus();
        var error = Assert.Throws<ArgumentException>(() => bus.Register((ushort)basePort, (ushort)length, new RecordingPortDevice(), "too-far"));
        Assert.Contains("too-far", error.Message);
        Assert.Empty(bus.Ranges);
    }

    [Fact]
    public void Register_EdgesOfPortSpace_Work()
    {
        var bus = new PortIoBus();
        var top = new RecordingPortDevice(fill: 0x77);
        var bottom = new RecordingPortDevice(fill: 0x33);
        bus.Register(0xFFFF, 1, top, "top");
        bus.Register(0x0000, 0xFFFF, bottom, "bottom");

        Span<byte> b = stackalloc byte[1];
        bus.Read(0xFFFF, b);
        Assert.Equal(0x77, b[0]);
        bus.Read(0x0000, b);
        Assert.Equal(0x33, b[0]);
        bus.Read(0xFFFE, b);
        Assert.Equal((byte)(0x33 ^ 0xFE), b[0]);
        Assert.Equal((ushort)0xFFFE, bottom.Reads[^1].Offset);
    }

    [Fact]
    public void Register_RejectsEmptyNameAndNullDevice()
    {
        var bus = new PortIoBus();
        Assert.Throws<ArgumentException>(() => bus.Register(0x80, 1, new RecordingPortDevice(), " "));
        Assert.Throws<ArgumentNullException>(() => bus.Register(0x80, 1, null!, "null"));
    }

    [Fact]
    public void FailedRegistration_LeavesBusUnchanged()
    {
        var bus = new PortIoBus();
        var owner = new RecordingPortDevice(fill: 0x11);
        bus.Register(0x40, 4, owner, "pit");

        Assert.Throws<InvalidOperationException>(() => bus.Register(0x42, 8, new RecordingPortDevice(), "bad"));

        Span<byte> b = stackalloc byte[1];
        bus.Read(0x45, b);
        Assert.Equal(0xFF, b[0]);
        Assert.Equal([((ushort)0x40, (ushort)4, "pit")], bus.Ranges);
    }

    [Fact]
    public void UnclaimedRead_FillsEveryByteWithFF()
    {
        var bus = new PortIoBus();
        bus.Register(0x3F8, 8, new RecordingPortDevice(), "uart");

        Span<byte> data = [1, 2, 3, 4];
        bus.Read(0x2F8, data);

        Assert.Equal([0xFF, 0xFF, 0xFF, 0xFF], data.ToArray());
    }

    [Fact]
    public void UnclaimedWrite_IsIgnored()
    {
        var bus = new PortIoBus();
        var device = new RecordingPortDevice();
        bus.Register(0x3F8, 8, device, "uart");

        bus.Write(0x3F7, [0x12]);
        bus.Write(0x400, [0x34, 0x56]);

        Assert.Empty(device.Writes);
    }

    [Fact]
    public void UnclaimedCallback_FiresOncePerDistinctPort_ForReadsAndWrites()
    {
        var reported = new List<ushort>();
        var bus = new PortIoBus(reported.Add);
        bus.Register(0x3F8, 8, new RecordingPortDevice(), "uart");

        Span<byte> b = stackalloc byte[1];
        bus.Read(0x80, b);
        bus.Read(0x80, b);
        bus.Write(0x80, [0]);
        bus.Write(0x61, [0]);
        bus.Read(0x61, b);
        bus.Read(0xFFFF, b);
        bus.Read(0x3F8, b); // claimed: not reported

        Assert.Equal([(ushort)0x80, (ushort)0x61, (ushort)0xFFFF], reported);
    }

    [Fact]
    public void UnclaimedCallback_FiresOnceEvenUnderConcurrentFirstAccess()
    {
        int calls = 0;
        var bus = new PortIoBus(_ => Interlocked.Increment(ref calls));

        Parallel.For(0, 64, _ =>
        {
            Span<byte> b = stackalloc byte[1];
            for (int i = 0; i < 1000; i++)
            {
                bus.Read(0x92, b);
            }
        });

        Assert.Equal(1, calls);
    }

    [Fact]
    public void Unregister_StopsRoutingAndKeepsOtherDevices()
    {
        var reported = new List<ushort>();
        var bus = new PortIoBus(reported.Add);
        var leaving = new RecordingPortDevice(fill: 0x10);
        var staying = new RecordingPortDevice(fill: 0x20);
        bus.Register(0x60, 1, leaving, "kbd-data");
        bus.Register(0x64, 1, leaving, "kbd-status");
        bus.Register(0x70, 2, staying, "cmos");

        bus.Unregister(leaving);

        Span<byte> b = stackalloc byte[1];
        bus.Read(0x60, b);
        Assert.Equal(0xFF, b[0]);
        bus.Write(0x64, [1]);
        bus.Read(0x70, b);
        Assert.Equal(0x20, b[0]);

        Assert.Empty(leaving.Reads);
        Assert.Empty(leaving.Writes);
        Assert.Equal([(ushort)0x60, (ushort)0x64], reported);
        Assert.Equal([((ushort)0x70, (ushort)2, "cmos")], bus.Ranges);
    }

    [Fact]
    public void Unregister_FreesRangeForReuse_AndUnknownDeviceIsNoOp()
    {
        var bus = new PortIoBus();
        var first = new RecordingPortDevice();
        bus.Register(0xF4, 1, first, "debug-exit");

        bus.Unregister(new RecordingPortDevice());
        Assert.Single(bus.Ranges);

        bus.Unregister(first);
        bus.Unregister(first);
        var second = new RecordingPortDevice(fill: 0x44);
        bus.Register(0xF4, 1, second, "debug-exit-2");

        Span<byte> b = stackalloc byte[1];
        bus.Read(0xF4, b);
        Assert.Equal(0x44, b[0]);
    }

    [Fact]
    public void Ranges_AreSortedByBaseAndReadOnly()
    {
        var bus = new PortIoBus();
        bus.Register(0x3F8, 8, new RecordingPortDevice(), "com1");
        bus.Register(0x2F8, 8, new RecordingPortDevice(), "com2");
        bus.Register(0xF4, 1, new RecordingPortDevice(), "debug-exit");

        Assert.Equal(
            [((ushort)0xF4, (ushort)1, "debug-exit"), ((ushort)0x2F8, (ushort)8, "com2"), ((ushort)0x3F8, (ushort)8, "com1")],
            bus.Ranges);
        Assert.False(bus.Ranges is (ushort, ushort, string)[]);
    }

    [Fact]
    public void ReadAndWrite_DoNotAllocate()
    {
        var bus = new PortIoBus(_ => { });
        bus.Register(0x3F8, 8, new NullPortDevice(), "uart");
        Span<byte> b = stackalloc byte[4];
        ReadOnlySpan<byte> w = [1, 2];

        // Warm up, including the one-time unclaimed report for 0x80.
        for (int i = 0; i < 100; i++)
        {
            bus.Read(0x3F8, b);
            bus.Write(0x3F9, w);
            bus.Read(0x80, b);
            bus.Write(0x80, w);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
        {
            bus.Read(0x3F8, b);
            bus.Write(0x3F9, w);
            bus.Read(0x80, b);
            bus.Write(0x80, w);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public async Task ConcurrentRegistration_ReadersSeeEitherDeviceOrUnclaimed()
    {
        var bus = new PortIoBus();
        var device = new RecordingPortDevice(fill: 0x3C);
        bus.Register(0x10, 1, new RecordingPortDevice(), "steady");
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

                bus.Read(0x500, b);
                if (b[0] is not (0xFF or 0x3C))
                {
                    Interlocked.Increment(ref unexpected);
                }

                Interlocked.Increment(ref reads);
            }
        })).ToArray();

        // Keep flapping until the readers have really raced against it (they may start late on a busy machine).
        var deadline = DateTime.UtcNow.AddSeconds(10);
        for (int i = 0; (i < 2000 || Volatile.Read(ref reads) < 100_000) && DateTime.UtcNow < deadline; i++)
        {
            bus.Register(0x500, 4, device, "flapping");
            bus.Unregister(device);
        }

        stop.Cancel();
        await Task.WhenAll(readers);

        Assert.Equal(0, unexpected);
        Assert.True(reads >= 100_000, $"only {reads} reads raced the registrations");
        Assert.Equal([((ushort)0x10, (ushort)1, "steady")], bus.Ranges);
    }

    private sealed class NullPortDevice : IPortDevice
    {
        public void Read(ushort offset, Span<byte> data) => data.Clear();

        public void Write(ushort offset, ReadOnlySpan<byte> data)
        {
        }
    }
}
