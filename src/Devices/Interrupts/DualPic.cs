namespace Vmm.Devices.Interrupts;

/// <summary>
/// The PC's pair of 8259A PICs: the master at 0x20/0x21 (IRQ 0–7), the slave at 0xA0/0xA1 (IRQ 8–15) cascaded
/// into the master's IRQ 2. Devices raise lines from any thread (<see cref="SetIrq"/>, <see cref="PulseIrq"/>);
/// the vCPU asks whether the output is asserted and acknowledges it (the INTA cycle) to get the vector. The same
/// object serves KVM (userspace irqchip, KVM_INTERRUPT) and the software CPU, so its state section means the same
/// under both. The edge/level control registers (ELCR, ports 0x4D0/0x4D1, as on PIIX-era chipsets) choose which
/// lines are level-triggered; IRQ 0, 1, 2, 8 and 13 are always edge-triggered there, so their bits read as zero.
/// </summary>
public sealed class DualPic : IStatefulDevice
{
    public const ushort MasterBase = 0x20;
    public const ushort SlaveBase = 0xA0;

    /// <summary>ELCR1 (master) at 0x4D0, ELCR2 (slave) at 0x4D1.</summary>
    public const ushort ElcrBase = 0x4D0;

    /// <summary>The ELCR bits a guest may set, per chip (PIIX: IRQ 0–2 on the master, 8 and 13 on the slave are edge only).</summary>
    public const byte MasterElcrMask = 0xF8;
    public const byte SlaveElcrMask = 0xDE;

    /// <summary>Version 2 added the two ELCR bytes after the chips; a version 1 section restores with both zero.</summary>
    public const int StateVersion = 2;

    private readonly object gate = new();
    private readonly Pic8259 master = new();
    private readonly Pic8259 slave = new();
    private volatile bool outputAsserted;

    public DualPic()
    {
        MasterPorts = new ChipPorts(this, master);
        SlavePorts = new ChipPorts(this, slave);
        ElcrPorts = new EdgeLevelPorts(this);
    }

    /// <summary>Ports 0x20–0x21.</summary>
    public IPortDevice MasterPorts { get; }

    /// <summary>Ports 0xA0–0xA1.</summary>
    public IPortDevice SlavePorts { get; }

    /// <summary>Ports 0x4D0–0x4D1: the edge/level control registers of the master and the slave.</summary>
    public IPortDevice ElcrPorts { get; }

    /// <summary>The master's INT output: an unmasked request is waiting for the CPU. Cheap; read without a lock.</summary>
    public bool OutputAsserted => outputAsserted;

    /// <summary>
    /// Raised (on the thread that caused it) when the INT output goes from idle to asserted: whoever runs the vCPU
    /// wakes a halted CPU or kicks a running one so that it takes the interrupt.
    /// </summary>
    public event Action? OutputRaised;

    public string SectionName => "pic";

    public int SectionVersion => StateVersion;

    /// <summary>Sets input line <paramref name="irq"/> (0–15) high or low; a rising edge requests an interrupt.</summary>
    public void SetIrq(int irq, bool high)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(irq);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(irq, 15);
        bool raised;
        lock (gate)
        {
            (irq < 8 ? master : slave).SetLevel(irq & 7, high);
            raised = Update();
        }

        Notify(raised);
    }

    /// <summary>An edge: the line goes high and low again (the PIT's output, a UART event).</summary>
    public void PulseIrq(int irq)
    {
        SetIrq(irq, true);
        SetIrq(irq, false);
    }

    /// <summary>
    /// The INTA cycle: the vector of the highest-priority pending interrupt, now in service. With nothing pending
    /// (the request went away) it is the spurious IRQ 7 of the chip concerned, as on the hardware.
    /// </summary>
    public byte Acknowledge()
    {
        byte vector;
        lock (gate)
        {
            vector = AcknowledgeLocked();
            Update();
        }

        return vector;
    }

    private byte AcknowledgeLocked()
    {
        int irq = master.PendingIrq();
        if (irq < 0)
        {
            return (byte)(master.VectorBase + 7);
        }

        master.Acknowledge(irq);
        if (irq != 2)
        {
            return (byte)(master.VectorBase + irq);
        }

        int slaveIrq = slave.PendingIrq();
        if (slaveIrq < 0)
        {
            return (byte)(slave.VectorBase + 7);
        }

        slave.Acknowledge(slaveIrq);
        return (byte)(slave.VectorBase + slaveIrq);
    }

    /// <summary>Back to the power-on state (every chip uninitialized, nothing masked or pending).</summary>
    public void Reset()
    {
        lock (gate)
        {
            master.Reset();
            slave.Reset();
            master.Elcr = 0;
            slave.Elcr = 0;
            Update();
        }
    }

    /// <summary>Recomputes the cascade and the output. Returns true when the output has just been asserted.</summary>
    private bool Update()
    {
        master.SetLevel(2, slave.PendingIrq() >= 0);
        bool now = master.PendingIrq() >= 0;
        bool raised = now && !outputAsserted;
        outputAsserted = now;
        return raised;
    }

    private void Notify(bool raised)
    {
        if (raised)
        {
            OutputRaised?.Invoke();
        }
    }

    private void Write(Pic8259 chip, int offset, byte value)
    {
        bool raised;
        lock (gate)
        {
            chip.Write(offset, value);
            raised = Update();
        }

        Notify(raised);
    }

    private byte Read(Pic8259 chip, int offset)
    {
        lock (gate)
        {
            byte value = chip.Read(offset, out bool polled);
            if (polled)
            {
                // Poll mode: the read is the acknowledge; bit 7 says whether there was a request.
                int irq = chip.PendingIrq();
                if (irq >= 0)
                {
                    chip.Acknowledge(irq);
                    value = (byte)(0x80 | irq);
                }

                Update();
            }

            return value;
        }
    }

    public byte[] SaveState()
    {
        lock (gate)
        {
            var w = new DeviceStateWriter(32);
            master.Save(w);
            slave.Save(w);
            w.WriteByte(master.Elcr);
            w.WriteByte(slave.Elcr);
            return w.ToArray();
        }
    }

    public void RestoreState(int version, ReadOnlySpan<byte> state)
    {
        // Version 1 (before the ELCR) is still understood: its lines were all edge-triggered.
        if (version != 1)
        {
            DeviceStateReader.RequireVersion(SectionName, StateVersion, version);
        }

        var r = new DeviceStateReader(SectionName, state);
        var newMaster = new Pic8259();
        var newSlave = new Pic8259();
        newMaster.Load(ref r);
        newSlave.Load(ref r);
        byte masterElcr = version >= 2 ? (byte)(r.ReadByte() & MasterElcrMask) : (byte)0;
        byte slaveElcr = version >= 2 ? (byte)(r.ReadByte() & SlaveElcrMask) : (byte)0;
        r.EnsureFullyRead();
        bool raised;
        lock (gate)
        {
            var w = new DeviceStateWriter(32);
            newMaster.Save(w);
            newSlave.Save(w);
            var copy = new DeviceStateReader(SectionName, w.ToArray());
            master.Load(ref copy);
            slave.Load(ref copy);
            master.Elcr = masterElcr;
            slave.Elcr = slaveElcr;
            outputAsserted = false;
            raised = Update();
        }

        Notify(raised);
    }

    private byte ReadElcr(int offset)
    {
        lock (gate)
        {
            return offset == 0 ? master.Elcr : slave.Elcr;
        }
    }

    /// <summary>
    /// A line switched to level-triggered takes its request from the line's level now; switched back to edge, it keeps
    /// what IRR holds and waits for the next rising edge.
    /// </summary>
    private void WriteElcr(int offset, byte value)
    {
        bool raised;
        lock (gate)
        {
            Pic8259 chip = offset == 0 ? master : slave;
            byte newElcr = (byte)(value & (offset == 0 ? MasterElcrMask : SlaveElcrMask));
            byte nowLevel = (byte)(newElcr & ~chip.Elcr);
            chip.Elcr = newElcr;
            chip.Irr = (byte)((chip.Irr & ~nowLevel) | (chip.LastLevels & nowLevel));
            raised = Update();
        }

        Notify(raised);
    }

    private sealed class EdgeLevelPorts(DualPic pair) : IPortDevice
    {
        public void Read(ushort offset, Span<byte> data)
        {
            data.Fill(0xFF);
            if (offset < 2)
            {
                data[0] = pair.ReadElcr(offset);
            }
        }

        public void Write(ushort offset, ReadOnlySpan<byte> data)
        {
            if (offset < 2 && data.Length > 0)
            {
                pair.WriteElcr(offset, data[0]);
            }
        }
    }

    private sealed class ChipPorts(DualPic pair, Pic8259 chip) : IPortDevice
    {
        public void Read(ushort offset, Span<byte> data)
        {
            data.Fill(0xFF);
            if (offset < 2)
            {
                data[0] = pair.Read(chip, offset);
            }
        }

        public void Write(ushort offset, ReadOnlySpan<byte> data)
        {
            if (offset < 2 && data.Length > 0)
            {
                pair.Write(chip, offset, data[0]);
            }
        }
    }
}
