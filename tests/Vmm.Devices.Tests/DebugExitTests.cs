using Vmm.Devices;

namespace Vmm.Devices.Tests;

public sealed class DebugExitTests
{
    private readonly List<int> _statuses = [];
    private readonly DebugExit _device;

    public DebugExitTests() => _device = new DebugExit(_statuses.Add);

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 3)]
    [InlineData(2, 5)]
    [InlineData(0x10, 0x21)]
    [InlineData(0x31, 0x63)]
    [InlineData(0x7F, 0xFF)]
    [InlineData(0xFF, 0x1FF)]
    public void ByteWrite_ExitsWithValueShiftedLeftOrOne(byte value, int expectedStatus)
    {
        _device.Write(0, [value]);

        Assert.Equal([expectedStatus], _statuses);
    }

    [Fact]
    public void WordWrite_UsesTheWholeLittleEndianValue()
    {
        _device.Write(0, [0x02, 0x01]);

        Assert.Equal([0x0205], _statuses);
    }

    [Fact]
    public void DwordWrite_UsesTheWholeLittleEndianValue()
    {
        _device.Write(0, [0x78, 0x56, 0x34, 0x12]);

        Assert.Equal([0x2468ACF1], _statuses);
    }

    [Theory]
    [InlineData(0xFFFF_FFFFu, -1)]
    [InlineData(0x8000_0000u, 1)]
    [InlineData(0x4000_0000u, unchecked((int)0x8000_0001u))]
    public void DwordWrite_WrapsLikeQemusThirtyTwoBitArithmetic(uint value, int expectedStatus)
    {
        Span<byte> bytes = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);

        _device.Write(0, bytes);

        Assert.Equal([expectedStatus], _statuses);
        Assert.Equal(expectedStatus, DebugExit.ExitStatusFor(value));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(8)]
    public void WritesOfImpossibleWidths_AreIgnored(int width)
    {
        _device.Write(0, new byte[width]);

        Assert.Empty(_statuses);
    }

    [Fact]
    public void EveryWrite_ReportsAnExit_WhateverTheOffset()
    {
        _device.Write(0, [1]);
        _device.Write(1, [2]);

        Assert.Equal([3, 5], _statuses);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void Reads_ReturnAllOnes_AndDoNotExit(int width)
    {
        var data = new byte[width];

        _device.Read(0, data);

        Assert.All(data, b => Assert.Equal(0xFF, b));
        Assert.Empty(_statuses);
    }

    [Fact]
    public void ThroughThePortBus_AWriteToF4Exits()
    {
        var bus = new PortIoBus();
        bus.Register(DebugExit.DefaultPort, 1, _device, "isa-debug-exit");

        bus.Write(0xF4, [0x10]);
        bus.Write(0xF5, [0x10]); // the neighbouring port is not the device

        Assert.Equal([0x21], _statuses);
    }

    [Fact]
    public void Identity()
    {
        Assert.Equal(0xF4, DebugExit.DefaultPort);
        Assert.Equal("isa-debug-exit@0xf4", _device.SectionName);
        Assert.Equal("isa-debug-exit@0x501", new DebugExit(_ => { }, 0x501).SectionName);
        Assert.Equal(1, _device.SectionVersion);
    }
}
