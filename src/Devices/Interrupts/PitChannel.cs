namespace Vmm.Devices.Interrupts;

/// <summary>
/// One 8254 counter, modelled from time rather than ticked: the count at any moment follows from when it was
/// loaded, so nothing runs while nobody looks. Modes 0 (interrupt on terminal count), 2 (rate generator) and 3
/// (square wave); modes 1, 4 and 5 count like mode 0. Times are nanoseconds of the machine's clock.
/// </summary>
public sealed class PitChannel
{
    public const long Frequency = 1_193_182;

    public byte Mode;
    public byte Access = 3; // 1 low byte, 2 high byte, 3 low then high
    public bool Bcd;
    public int Reload = 0x10000;
    public long LoadTimeNs;
    public bool Counting;
    public bool Gate = true;
    public bool WriteHighNext;
    public bool ReadHighNext;
    public byte WriteLatchLow;
    public bool Latched;
    public ushort LatchValue;
    public bool LatchHighNext;

    /// <summary>A read-back command latched the status byte: the next read returns it, before any latched count.</summary>
    public bool StatusLatched;
    public byte StatusValue;

    /// <summary>Input clock ticks since the count was loaded (or the gate rose).</summary>
    public long Ticks(long nowNs) => Counting && Gate ? Math.Max(0, (long)((Int128)(nowNs - LoadTimeNs) * Frequency / 1_000_000_000)) : 0;

    public bool Periodic => Mode is 2 or 3 or 6 or 7;

    /// <summary>The counting element's value now.</summary>
    public ushort Count(long nowNs)
    {
        if (!Counting)
        {
            return 0;
        }

        long ticks = Ticks(nowNs);
        if (Mode is 3 or 7)
        {
            // Square wave: the counter steps by two and runs down twice per period (once per output half), which
            // delay loops that read channel 0 see; QEMU's formula.
            return (ushort)(Reload - ((2 * ticks) % Reload));
        }

        if (Periodic)
        {
            long phase = ticks % Reload;
            return (ushort)(Reload - phase);
        }

        return (ushort)((Reload - ticks) & 0xFFFF);
    }

    /// <summary>The OUT pin now.</summary>
    public bool Output(long nowNs)
    {
        if (!Counting)
        {
            return Mode != 0;
        }

        long ticks = Ticks(nowNs);
        return Mode switch
        {
            0 or 1 or 4 or 5 => ticks >= Reload,
            2 or 6 => ticks % Reload != Reload - 1,
            _ => ticks % Reload < (Reload + 1) / 2,
        };
    }

    /// <summary>When the OUT pin next rises after <paramref name="afterNs"/> (the IRQ edge), or null if never.</summary>
    public long? NextRisingEdge(long afterNs)
    {
        if (!Counting || !Gate)
        {
            return null;
        }

        long ticks = Ticks(afterNs);
        long edgeTick;
        if (Periodic)
        {
            edgeTick = ((ticks / Reload) + 1) * Reload;
        }
        else if (ticks < Reload)
        {
            edgeTick = Reload;
        }
        else
        {
            return null;
        }

        return LoadTimeNs + (long)((Int128)edgeTick * 1_000_000_000 / Frequency) + 1;
    }

    /// <summary>
    /// The read-back status byte: OUT (bit 7), null count (bit 6: a control word was written and no count has
    /// been loaded since; this model loads a written count at once), then the access, mode and BCD bits of the control
    /// word.
    /// </summary>
    public byte Status(long nowNs) =>
        (byte)((Output(nowNs) ? 0x80 : 0) | (Counting ? 0 : 0x40) | (Access << 4) | (Mode << 1) | (Bcd ? 1 : 0));

    /// <summary>A new count was written: counting starts from it now (modes 0, 2 and 3 load on the next clock).</summary>
    public void Load(int value, long nowNs)
    {
        Reload = value == 0 ? 0x10000 : value;
        LoadTimeNs = nowNs;
        Counting = true;
    }

    public void Save(DeviceStateWriter w, long nowNs)
    {
        w.WriteByte(Mode);
        w.WriteByte(Access);
        w.WriteBoolean(Bcd);
        w.WriteInt32(Reload);
        // Relative to now, so that on the destination the count continues from where it was.
        w.WriteInt64(nowNs - LoadTimeNs);
        w.WriteBoolean(Counting);
        w.WriteBoolean(Gate);
        w.WriteBoolean(WriteHighNext);
        w.WriteBoolean(ReadHighNext);
        w.WriteByte(WriteLatchLow);
        w.WriteBoolean(Latched);
        w.WriteUInt16(LatchValue);
        w.WriteBoolean(LatchHighNext);
    }

    public void Load(ref DeviceStateReader r, long nowNs)
    {
        Mode = r.ReadByte();
        Access = r.ReadByte();
        Bcd = r.ReadBoolean();
        Reload = r.ReadInt32();
        LoadTimeNs = nowNs - r.ReadInt64();
        Counting = r.ReadBoolean();
        Gate = r.ReadBoolean();
        WriteHighNext = r.ReadBoolean();
        ReadHighNext = r.ReadBoolean();
        WriteLatchLow = r.ReadByte();
        Latched = r.ReadBoolean();
        LatchValue = r.ReadUInt16();
        LatchHighNext = r.ReadBoolean();
        if (Reload is < 1 or > 0x10000 || Mode > 7 || Access is < 1 or > 3)
        {
            throw new InvalidDataException("state section 'pit': a counter's mode, access or reload value is out of range");
        }
    }
}
