using System.Buffers.Binary;
using Vmm.Devices;

namespace Vmm.Devices.Tests;

/// <summary>The free-page-hint device's port protocol, driven through the port bus at 0x5A0 as a guest would.</summary>
public sealed class FreePageHintDeviceTests
{
    private const ushort Base = FreePageHintDevice.DefaultPort;
    private const ushort Length = FreePageHintDevice.DefaultPort + FreePageHintDevice.LengthOffset;

    // RAM as the device sees it: [0, 64 MiB) and an extra block at [4 GiB - 16 MiB, 4 GiB).
    private const ulong RamTop = 64 << 20;
    private const ulong ExtraBase = 0xFF00_0000;
    private const ulong ExtraEnd = 0x1_0000_0000;

    private readonly List<string> _debug = [];
    private readonly FreePageHintDevice _device;
    private readonly PortIoBus _bus = new();
    private readonly RecordingFreePageHintSink _sink = new();

    public FreePageHintDeviceTests()
    {
        _device = new FreePageHintDevice(IsRam, _debug.Add);
        _bus.Register(FreePageHintDevice.DefaultPort, FreePageHintDevice.PortCount, _device, "free-page-hint");
    }

    [Fact]
    public void Status_IsZeroWhileNobodyAsks()
    {
        Assert.Equal(0u, ReadStatus());
        Assert.Equal(0u, _device.Status);
    }

    [Fact]
    public void Status_ShowsTheRequestIdWhileTheRequestIsOpen_AndZeroAfterItEnds()
    {
        uint id = _device.BeginRequest(_sink);

        Assert.NotEqual(0u, id);
        Assert.Equal(id, ReadStatus());
        _device.EndRequest(id);
        Assert.Equal(0u, ReadStatus());
    }

    [Fact]
    public void EveryNewRequest_GetsANewId()
    {
        uint first = _device.BeginRequest(_sink);
        _device.EndRequest(first);
        uint second = _device.BeginRequest(_sink);

        Assert.NotEqual(first, second);
        Assert.NotEqual(0u, second);
        Assert.Equal(second, ReadStatus());
    }

    [Fact]
    public void EndingAReplacedRequest_LeavesTheNewOneOpen()
    {
        uint old = _device.BeginRequest(new RecordingFreePageHintSink());
        uint current = _device.BeginRequest(_sink);

        _device.EndRequest(old);
        Commit(0x10_0000, 0x1000);

        Assert.Equal(current, ReadStatus());
        Assert.Equal([(0x10_0000ul, 0x1000ul)], _sink.Hints);
    }

    [Fact]
    public void WriteToLength_CommitsTheHintToTheSink()
    {
        _device.BeginRequest(_sink);

        Commit(0x110_0000, 0x40_0000);
        Commit(0x150_0000, 0x1000);

        Assert.Equal([(0x110_0000ul, 0x40_0000ul), (0x150_0000ul, 0x1000ul)], _sink.Hints);
        Assert.Equal(2, _device.AcceptedHints);
        Assert.Equal(0, _device.MalformedHints);
    }

    [Fact]
    public void WriteToBase_AloneCommitsNothing()
    {
        _device.BeginRequest(_sink);

        Out32(Base, 0x20_0000);

        Assert.Empty(_sink.Hints);
    }

    [Fact]
    public void TheBaseStays_SoALengthWriteAloneCommitsAgainstTheLastBase()
    {
        _device.BeginRequest(_sink);
        Out32(Base, 0x20_0000);

        Out32(Length, 0x1000);
        Out32(Length, 0x2000);

        Assert.Equal([(0x20_0000ul, 0x1000ul), (0x20_0000ul, 0x2000ul)], _sink.Hints);
    }

    [Fact]
    public void AHintInTheExtraBlock_IsAccepted()
    {
        _device.BeginRequest(_sink);

        Commit((uint)ExtraBase, 0x100_0000);

        Assert.Equal([(ExtraBase, 0x100_0000ul)], _sink.Hints);
    }

    [Theory]
    [InlineData(0x10_0800u, 0x1000u)] // base not page aligned
    [InlineData(0x10_0000u, 0x0800u)] // length not a whole page
    [InlineData(0x10_0000u, 0u)] // empty
    [InlineData((uint)RamTop, 0x1000u)] // starts at the top of RAM
    [InlineData((uint)RamTop - 0x1000, 0x2000u)] // runs past the top of RAM
    [InlineData(0x8000_0000u, 0x1000u)] // between the blocks
    [InlineData((uint)RamTop - 0x1000, 0xFF00_0000u)] // spans the gap into the extra block
    public void AMalformedHint_IsIgnoredAndCounted(uint address, uint length)
    {
        _device.BeginRequest(_sink);

        Commit(address, length);

        Assert.Empty(_sink.Hints);
        Assert.Equal(1, _device.MalformedHints);
        Assert.Equal(0, _device.AcceptedHints);
        Assert.Contains(_debug, line => line.Contains("ignored"));
    }

    [Fact]
    public void AHintWhileNobodyAsks_IsIgnoredAndCounted()
    {
        Commit(0x10_0000, 0x1000);
        uint id = _device.BeginRequest(_sink);
        _device.EndRequest(id);
        Commit(0x10_0000, 0x1000);

        Assert.Empty(_sink.Hints);
        Assert.Equal(2, _device.UnrequestedHints);
        Assert.Equal(0, _device.MalformedHints);
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(0, 2)]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 1)]
    [InlineData(4, 4)]
    [InlineData(4, 2)]
    [InlineData(6, 2)]
    [InlineData(7, 1)]
    public void AnyReadButThirtyTwoBitsOfStatus_ReadsAllOnes(ushort offset, int width)
    {
        _device.BeginRequest(_sink);
        byte[] data = new byte[width];

        _bus.Read((ushort)(Base + offset), data);

        Assert.All(data, b => Assert.Equal(0xFF, b));
        Assert.Equal(1, _device.IgnoredAccesses);
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(0, 2)]
    [InlineData(2, 2)]
    [InlineData(4, 1)]
    [InlineData(4, 2)]
    [InlineData(6, 2)]
    [InlineData(1, 4)]
    [InlineData(2, 4)]
    public void ANarrowOrMisplacedWrite_ChangesNothingAndCommitsNothing(ushort offset, int width)
    {
        _device.BeginRequest(_sink);
        Out32(Base, 0x20_0000);

        _bus.Write((ushort)(Base + offset), new byte[width]);
        Out32(Length, 0x1000);

        Assert.Equal([(0x20_0000ul, 0x1000ul)], _sink.Hints);
        Assert.Equal(1, _device.IgnoredAccesses);
    }

    [Fact]
    public void State_CarriesTheLastIdAndAPendingBase_SoIdsKeepGrowingOnTheDestination()
    {
        uint id = _device.BeginRequest(_sink);
        _device.EndRequest(id);
        Out32(Base, 0x30_0000);

        var destination = new FreePageHintDevice(IsRam);
        destination.RestoreState(_device.SectionVersion, _device.SaveState());
        var destinationSink = new RecordingFreePageHintSink();
        uint next = destination.BeginRequest(destinationSink);
        destination.Write(FreePageHintDevice.LengthOffset, Le32(0x1000));

        Assert.Equal(0u, new FreePageHintDevice(IsRam).Status);
        Assert.True(next > id, $"the destination's first id {next} must follow the source's {id}");
        Assert.Equal([(0x30_0000ul, 0x1000ul)], destinationSink.Hints);
        Assert.Equal(8, _device.SaveState().Length);
    }

    [Fact]
    public void State_UnknownVersionOrWrongLength_Throws()
    {
        var version = Assert.Throws<InvalidDataException>(() => _device.RestoreState(2, new byte[8]));
        Assert.Contains("free-page-hint@0x5a0", version.Message);
        Assert.Throws<InvalidDataException>(() => _device.RestoreState(1, new byte[9]));
        Assert.Throws<InvalidDataException>(() => _device.RestoreState(1, new byte[7]));
    }

    [Fact]
    public void EndRequest_IsABarrier_NoHintReachesTheSinkAfterItReturns()
    {
        var sink = new RecordingFreePageHintSink();
        uint id = _device.BeginRequest(sink);
        using var stop = new CancellationTokenSource();
        // A second thread plays the vCPU, committing as fast as it can.
        var guest = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                Commit(0x10_0000, 0x1000);
            }
        });
        guest.Start();
        SpinWait.SpinUntil(() => _device.AcceptedHints > 100, TimeSpan.FromSeconds(10));

        _device.EndRequest(id);
        int atEnd;
        lock (sink.Hints)
        {
            atEnd = sink.Hints.Count;
        }

        Thread.Sleep(50);
        stop.Cancel();
        guest.Join();

        Assert.True(atEnd > 100);
        Assert.Equal(atEnd, sink.Hints.Count);
        Assert.True(_device.UnrequestedHints > 0, "the guest kept hinting after the end; those must be counted as unrequested");
    }

    private static bool IsRam(ulong address, ulong length) =>
        (address < RamTop && length <= RamTop - address) || (address >= ExtraBase && address < ExtraEnd && length <= ExtraEnd - address);

    private static byte[] Le32(uint value)
    {
        byte[] bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return bytes;
    }

    private uint ReadStatus()
    {
        byte[] data = new byte[4];
        _bus.Read(Base, data);
        return BinaryPrimitives.ReadUInt32LittleEndian(data);
    }

    private void Out32(ushort port, uint value) => _bus.Write(port, Le32(value));

    private void Commit(uint address, uint length)
    {
        Out32(Base, address);
        Out32(Length, length);
    }
}
