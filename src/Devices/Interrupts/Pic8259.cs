namespace Vmm.Devices.Interrupts;

/// <summary>
/// One Intel 8259A programmable interrupt controller: IRR, ISR, IMR, the ICW1–ICW4 initialization sequence, OCW2
/// (non-specific, specific and rotating EOI), OCW3 (read IRR/ISR, poll, special mask) and auto EOI. Inputs are
/// edge-triggered as on the ISA bus, except those its <see cref="Elcr"/> makes level-triggered (the PCI-era chipset
/// register at 0x4D0/0x4D1). Not thread-safe: <see cref="DualPic"/> serializes every access.
/// </summary>
public sealed class Pic8259
{
    public byte Irr;
    public byte Isr;
    public byte Imr;
    public byte LastLevels;
    public byte VectorBase;
    public byte PriorityAdd;
    public byte InitState;
    public bool ReadIsr;
    public bool Poll;
    public bool SpecialMask;
    public bool AutoEoi;
    public bool RotateOnAutoEoi;
    public bool Init4;
    public bool SingleMode;
    public bool SpecialFullyNested;

    /// <summary>
    /// Whether an initialization sequence has completed since power-on. Before that the chip's vector base is
    /// undefined, so it presents nothing to the CPU: a bare-machine guest that never programs the PIC never sees an
    /// interrupt, whatever its devices do.
    /// </summary>
    public bool Initialized;

    /// <summary>
    /// The edge/level control register: a set bit makes that input level-triggered (its request follows the line
    /// and is not consumed by the acknowledge). A chipset register, not the 8259's: ICW1 leaves it alone.
    /// </summary>
    public byte Elcr;

    /// <summary>An input line changes level: a rising edge latches the request in IRR; a level-triggered line is IRR.</summary>
    public void SetLevel(int irq, bool high)
    {
        byte mask = (byte)(1 << irq);
        if ((Elcr & mask) != 0)
        {
            Irr = high ? (byte)(Irr | mask) : (byte)(Irr & ~mask);
            LastLevels = high ? (byte)(LastLevels | mask) : (byte)(LastLevels & ~mask);
            return;
        }

        if (high)
        {
            if ((LastLevels & mask) == 0)
            {
                Irr |= mask;
            }

            LastLevels |= mask;
        }
        else
        {
            LastLevels &= (byte)~mask;
        }
    }

    /// <summary>The highest-priority IRQ in <paramref name="bits"/> under the current rotation, or -1.</summary>
    private int HighestPriority(byte bits)
    {
        if (bits == 0)
        {
            return -1;
        }

        int priority = 0;
        while ((bits & (1 << ((priority + PriorityAdd) & 7))) == 0)
        {
            priority++;
        }

        return priority;
    }

    /// <summary>The IRQ this chip would present to the CPU now (requested, unmasked, above any in service), or -1.</summary>
    public int PendingIrq()
    {
        if (!Initialized)
        {
            return -1;
        }

        int priority = HighestPriority((byte)(Irr & ~Imr));
        if (priority < 0)
        {
            return -1;
        }

        byte inService = Isr;
        if (SpecialMask)
        {
            inService &= (byte)~Imr;
        }

        // In special fully nested mode the cascade input may nest over itself (the master's IRQ 2).
        if (SpecialFullyNested)
        {
            inService &= unchecked((byte)~(1 << 2));
        }

        int current = HighestPriority(inService);
        if (current < 0 || priority < current)
        {
            return (priority + PriorityAdd) & 7;
        }

        return -1;
    }

    /// <summary>The INTA cycle for <paramref name="irq"/>: moves it from IRR to ISR (unless auto EOI).</summary>
    public void Acknowledge(int irq)
    {
        byte mask = (byte)(1 << irq);

        // A level-triggered request stays while its line is high: after the EOI it is taken again.
        if ((Elcr & mask) == 0)
        {
            Irr &= (byte)~mask;
        }

        if (AutoEoi)
        {
            if (RotateOnAutoEoi)
            {
                PriorityAdd = (byte)((irq + 1) & 7);
            }
        }
        else
        {
            Isr |= mask;
        }
    }

    public void Reset()
    {
        Irr = Isr = Imr = LastLevels = VectorBase = PriorityAdd = InitState = 0;
        ReadIsr = Poll = SpecialMask = AutoEoi = RotateOnAutoEoi = Init4 = SingleMode = SpecialFullyNested = Initialized = false;
    }

    /// <summary>A write to the command port (offset 0) or data port (offset 1).</summary>
    public void Write(int offset, byte value)
    {
        if (offset == 0)
        {
            if ((value & 0x10) != 0)
            {
                // ICW1: start of initialization. The mask and every request are cleared; ICW2 (and 3, 4) follow.
                byte keepLevels = LastLevels;
                bool wasInitialized = Initialized;
                Reset();
                LastLevels = keepLevels;
                Initialized = wasInitialized;
                InitState = 1;
                Init4 = (value & 0x01) != 0;
                SingleMode = (value & 0x02) != 0;
            }
            else if ((value & 0x08) != 0)
            {
                // OCW3.
                if ((value & 0x04) != 0)
                {
                    Poll = true;
                }

                if ((value & 0x02) != 0)
                {
                    ReadIsr = (value & 0x01) != 0;
                }

                if ((value & 0x40) != 0)
                {
                    SpecialMask = (value & 0x20) != 0;
                }
            }
            else
            {
                WriteOcw2(value);
            }

            return;
        }

        switch (InitState)
        {
            case 0:
                Imr = value; // OCW1
                break;
            case 1:
                VectorBase = (byte)(value & 0xF8);
                Initialized = true;
                InitState = SingleMode ? (Init4 ? (byte)3 : (byte)0) : (byte)2;
                break;
            case 2:
                InitState = Init4 ? (byte)3 : (byte)0; // ICW3: the cascade wiring is fixed on a PC
                break;
            case 3:
                SpecialFullyNested = (value & 0x10) != 0;
                AutoEoi = (value & 0x02) != 0;
                InitState = 0;
                break;
        }
    }

    private void WriteOcw2(byte value)
    {
        int command = value >> 5;
        switch (command)
        {
            case 0: // rotate in automatic EOI mode: clear
            case 4: // ... set
                RotateOnAutoEoi = command == 4;
                break;
            case 1: // non-specific EOI
            case 5: // rotate on non-specific EOI
                int priority = HighestPriority(Isr);
                if (priority >= 0)
                {
                    int irq = (priority + PriorityAdd) & 7;
                    Isr &= (byte)~(1 << irq);
                    if (command == 5)
                    {
                        PriorityAdd = (byte)((irq + 1) & 7);
                    }
                }

                break;
            case 3: // specific EOI
                Isr &= (byte)~(1 << (value & 7));
                break;
            case 6: // set priority
                PriorityAdd = (byte)(((value & 7) + 1) & 7);
                break;
            case 7: // rotate on specific EOI
                Isr &= (byte)~(1 << (value & 7));
                PriorityAdd = (byte)(((value & 7) + 1) & 7);
                break;
        }
    }

    /// <summary>A read of the command port (IRR or ISR, per OCW3) or the data port (IMR). A pending poll answers instead.</summary>
    public byte Read(int offset, out bool polled)
    {
        polled = Poll;
        if (Poll)
        {
            Poll = false;
            return 0; // the pair answers polls (it knows the cascade)
        }

        return offset == 0 ? (ReadIsr ? Isr : Irr) : Imr;
    }

    public void Save(DeviceStateWriter w)
    {
        w.WriteByte(Irr);
        w.WriteByte(Isr);
        w.WriteByte(Imr);
        w.WriteByte(LastLevels);
        w.WriteByte(VectorBase);
        w.WriteByte(PriorityAdd);
        w.WriteByte(InitState);
        byte flags = 0;
        bool[] bits = [ReadIsr, Poll, SpecialMask, AutoEoi, RotateOnAutoEoi, Init4, SingleMode, SpecialFullyNested];
        for (int i = 0; i < bits.Length; i++)
        {
            flags |= bits[i] ? (byte)(1 << i) : (byte)0;
        }

        w.WriteByte(flags);
        w.WriteBoolean(Initialized);
    }

    public void Load(ref DeviceStateReader r)
    {
        Irr = r.ReadByte();
        Isr = r.ReadByte();
        Imr = r.ReadByte();
        LastLevels = r.ReadByte();
        VectorBase = r.ReadByte();
        PriorityAdd = r.ReadByte();
        InitState = r.ReadByte();
        byte flags = r.ReadByte();
        ReadIsr = (flags & 1) != 0;
        Poll = (flags & 2) != 0;
        SpecialMask = (flags & 4) != 0;
        AutoEoi = (flags & 8) != 0;
        RotateOnAutoEoi = (flags & 16) != 0;
        Init4 = (flags & 32) != 0;
        SingleMode = (flags & 64) != 0;
        SpecialFullyNested = (flags & 128) != 0;
        Initialized = r.ReadBoolean();
    }
}
