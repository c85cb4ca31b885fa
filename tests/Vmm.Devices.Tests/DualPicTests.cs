using Vmm.Devices.Interrupts;

namespace Vmm.Devices.Tests;

/// <summary>The 8259A pair as a PC BIOS programs it: vectors 08h and 70h, cascade on IRQ 2.</summary>
public sealed class DualPicTests
{
    private readonly DualPic pic = new();
    private int raised;

    public DualPicTests()
    {
        pic.OutputRaised += () => raised++;
        Initialize(pic.MasterPorts, 0x08, 0x04);
        Initialize(pic.SlavePorts, 0x70, 0x02);
    }

    private static void Initialize(IPortDevice chip, byte vectorBase, byte cascade)
    {
        chip.Write(0, [0x11]);
        chip.Write(1, [vectorBase]);
        chip.Write(1, [cascade]);
        chip.Write(1, [0x01]);
    }

    private byte ReadRegister(IPortDevice chip, byte ocw3)
    {
        chip.Write(0, [ocw3]);
        Span<byte> b = stackalloc byte[1];
        chip.Read(0, b);
        return b[0];
    }

    [Fact]
    public void AnEdgeIsDeliveredAsItsVectorAndStaysInServiceUntilEoi()
    {
        pic.PulseIrq(0);

        Assert.True(pic.OutputAsserted);
        Assert.Equal(1, raised);
        Assert.Equal(0x08, pic.Acknowledge());
        Assert.False(pic.OutputAsserted);
        Assert.Equal(0x01, ReadRegister(pic.MasterPorts, 0x0B)); // ISR

        // The same line again: requested (IRR) but held back while IRQ 0 is in service.
        pic.PulseIrq(0);
        Assert.False(pic.OutputAsserted);
        Assert.Equal(0x01, ReadRegister(pic.MasterPorts, 0x0A)); // IRR

        pic.MasterPorts.Write(0, [0x20]); // non-specific EOI
        Assert.True(pic.OutputAsserted);
        Assert.Equal(0x08, pic.Acknowledge());
    }

    [Fact]
    public void AMaskedLineIsLatchedButNotDeliveredUntilUnmasked()
    {
        pic.MasterPorts.Write(1, [0x01]);
        pic.PulseIrq(0);

        Assert.False(pic.OutputAsserted);
        pic.MasterPorts.Write(1, [0x00]);
        Assert.True(pic.OutputAsserted);
        Assert.Equal(0x08, pic.Acknowledge());
    }

    [Fact]
    public void HigherPriorityNestsOverLowerAndSpecificEoiClearsOne()
    {
        pic.PulseIrq(4);
        Assert.Equal(0x0C, pic.Acknowledge());
        pic.PulseIrq(1);
        Assert.True(pic.OutputAsserted); // IRQ 1 outranks IRQ 4 in service
        Assert.Equal(0x09, pic.Acknowledge());
        pic.PulseIrq(6);
        Assert.False(pic.OutputAsserted); // IRQ 6 ranks below both

        pic.MasterPorts.Write(0, [0x64]); // specific EOI for IRQ 4
        Assert.Equal(0x02, ReadRegister(pic.MasterPorts, 0x0B));
        Assert.False(pic.OutputAsserted); // IRQ 1 still in service
        pic.MasterPorts.Write(0, [0x20]);
        Assert.Equal(0x0E, pic.Acknowledge());
    }

    [Fact]
    public void SlaveLinesCascadeThroughIrq2()
    {
        pic.PulseIrq(12);

        Assert.True(pic.OutputAsserted);
        Assert.Equal(0x74, pic.Acknowledge());
        Assert.Equal(0x04, ReadRegister(pic.MasterPorts, 0x0B));
        Assert.Equal(0x10, ReadRegister(pic.SlavePorts, 0x0B));
    }

    [Fact]
    public void AutoEoiLeavesNothingInService()
    {
        pic.MasterPorts.Write(0, [0x11]);
        pic.MasterPorts.Write(1, [0x20]);
        pic.MasterPorts.Write(1, [0x04]);
        pic.MasterPorts.Write(1, [0x03]); // 8086 mode, auto EOI

        pic.PulseIrq(3);
        Assert.Equal(0x23, pic.Acknowledge());
        Assert.Equal(0x00, ReadRegister(pic.MasterPorts, 0x0B));
        pic.PulseIrq(3);
        Assert.True(pic.OutputAsserted);
    }

    [Fact]
    public void StateRoundTripsIntoAFreshPair()
    {
        pic.MasterPorts.Write(1, [0xF8]);
        pic.PulseIrq(1);
        Assert.Equal(0x09, pic.Acknowledge());
        pic.PulseIrq(0);

        var copy = new DualPic();
        copy.RestoreState(pic.SectionVersion, pic.SaveState());

        Assert.Equal(pic.SaveState(), copy.SaveState());
        Assert.True(copy.OutputAsserted); // IRQ 0 outranks the IRQ 1 in service
        Assert.Equal(0x08, copy.Acknowledge());
        Assert.Throws<InvalidDataException>(() => copy.RestoreState(3, pic.SaveState()));
        Assert.Throws<InvalidDataException>(() => copy.RestoreState(1, pic.SaveState()[..5]));
    }

    private byte ReadElcr(ushort offset)
    {
        Span<byte> b = stackalloc byte[1];
        pic.ElcrPorts.Read(offset, b);
        return b[0];
    }

    [Fact]
    public void ElcrPortsReadBackWhatWasWrittenExceptTheEdgeOnlyLines()
    {
        Assert.Equal(0x00, ReadElcr(0));
        Assert.Equal(0x00, ReadElcr(1));

        pic.ElcrPorts.Write(0, [0xFF]);
        pic.ElcrPorts.Write(1, [0xFF]);

        // IRQ 0, 1, 2 (master) and 8, 13 (slave) are edge-triggered on a PC whatever is written.
        Assert.Equal(DualPic.MasterElcrMask, ReadElcr(0));
        Assert.Equal(DualPic.SlaveElcrMask, ReadElcr(1));

        // The machine's reset (not the guest's ICW1) clears them.
        Initialize(pic.MasterPorts, 0x08, 0x04);
        Assert.Equal(DualPic.MasterElcrMask, ReadElcr(0));
        pic.Reset();
        Assert.Equal(0x00, ReadElcr(0));
    }

    [Fact]
    public void ALevelTriggeredLineIsRequestedAgainAfterEoiWhileHighAndNotAfterItDrops()
    {
        pic.ElcrPorts.Write(0, [0x20]); // IRQ 5 level-triggered
        pic.SetIrq(5, true);

        Assert.True(pic.OutputAsserted);
        Assert.Equal(0x0D, pic.Acknowledge());
        pic.MasterPorts.Write(0, [0x20]);
        Assert.True(pic.OutputAsserted); // still high: requested again, no new edge needed
        Assert.Equal(0x0D, pic.Acknowledge());

        pic.SetIrq(5, false);
        pic.MasterPorts.Write(0, [0x20]);
        Assert.False(pic.OutputAsserted);
        Assert.Equal(0x00, ReadRegister(pic.MasterPorts, 0x0A));

        // An edge-triggered line held high is requested once.
        pic.SetIrq(4, true);
        Assert.Equal(0x0C, pic.Acknowledge());
        pic.MasterPorts.Write(0, [0x20]);
        Assert.False(pic.OutputAsserted);
    }

    [Fact]
    public void ElcrTravelsInThePicSectionAndAVersion1SectionRestoresAsAllEdge()
    {
        pic.ElcrPorts.Write(0, [0x28]);
        pic.ElcrPorts.Write(1, [0x0C]);
        byte[] saved = pic.SaveState();

        var copy = new DualPic();
        copy.RestoreState(DualPic.StateVersion, saved);
        Span<byte> b = stackalloc byte[1];
        copy.ElcrPorts.Read(0, b);
        Assert.Equal(0x28, b[0]);
        copy.ElcrPorts.Read(1, b);
        Assert.Equal(0x0C, b[0]);

        // Version 1 was the two chips alone.
        var old = new DualPic();
        old.RestoreState(1, saved[..^2]);
        old.ElcrPorts.Read(0, b);
        Assert.Equal(0x00, b[0]);
        Assert.Equal(saved[..^2], old.SaveState()[..^2]);
    }
}

/// <summary>A pair nobody programmed.</summary>
public sealed class UninitializedPicTests
{
    [Fact]
    public void PresentsNothingUntilInitialized()
    {
        var pic = new DualPic();
        pic.PulseIrq(4);

        Assert.False(pic.OutputAsserted);
        pic.MasterPorts.Write(0, [0x11]);
        pic.MasterPorts.Write(1, [0x20]);
        pic.MasterPorts.Write(1, [0x04]);
        pic.MasterPorts.Write(1, [0x01]);
        pic.PulseIrq(4);
        Assert.True(pic.OutputAsserted);
        Assert.Equal(0x24, pic.Acknowledge());
    }
}
