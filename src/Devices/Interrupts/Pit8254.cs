namespace Vmm.Devices.Interrupts;

/// <summary>
/// The 8254 programmable interval timer at ports 0x40–0x43: three counters at 1.193182 MHz, the mode/command
/// register (counter latch, read-back of counts and status), and channel 0's output wired to IRQ 0. Channel 2's gate and output are
/// reached through port 0x61 (<see cref="SystemControlPort"/>). Nothing ticks: counts are computed from the clock,
/// and a timer thread of the VMM calls <see cref="Service"/> at <see cref="NextDeadline"/> to raise IRQ 0. A late
/// timer thread delivers one edge for the periods it missed (the PIC would merge them anyway), so guest tick counts
/// fall behind rather than burst.
/// </summary>
public sealed class Pit8254 : IPortDevice, IStatefulDevice
{
    public const ushort BasePort = 0x40;
    public const ushort PortCount = 4;
    /// <summary>Version 2 added each counter's latched read-back status after the channels; version 1 restores with none.</summary>
    public const int StateVersion = 2;

    private readonly object gate = new();
    private readonly Func<long> clockNs;
    private readonly Action<int> pulseIrq;
    private readonly PitChannel[] channels = [new(), new(), new()];
    private long? nextIrqNs;

    /// <param name="clockNs">The machine's clock in nanoseconds (monotonic).</param>
    /// <param name="pulseIrq">Raises an edge on an IRQ line (channel 0: IRQ 0).</param>
    public Pit8254(Func<long> clockNs, Action<int> pulseIrq)
    {
        this.clockNs = clockNs;
        this.pulseIrq = pulseIrq;
        channels[2].Gate = false;
    }

    public string SectionName => "pit";

    public int SectionVersion => StateVersion;

    /// <summary>Raised when channel 0 was reprogrammed: the timer thread must look at <see cref="NextDeadline"/> again.</summary>
    public event Action? Reprogrammed;

    /// <summary>When IRQ 0 next fires (clock nanoseconds), or null while channel 0 does not count.</summary>
    public long? NextDeadline
    {
        get
        {
            lock (gate)
            {
                return nextIrqNs;
            }
        }
    }

    /// <summary>Raises IRQ 0 if its time has come; returns the next deadline.</summary>
    public long? Service()
    {
        bool fire = false;
        long? next;
        lock (gate)
        {
            long now = clockNs();
            if (nextIrqNs is { } due && now >= due)
            {
                fire = true;
                nextIrqNs = channels[0].NextRisingEdge(now);
            }

            next = nextIrqNs;
        }

        if (fire)
        {
            pulseIrq(0);
        }

        return next;
    }

    public void Read(ushort offset, Span<byte> data)
    {
        data.Fill(0xFF);
        if (offset < 3)
        {
            lock (gate)
            {
                data[0] = ReadCounter(channels[offset], clockNs());
            }
        }
    }

    private static byte ReadCounter(PitChannel c, long now)
    {
        if (c.StatusLatched)
        {
            c.StatusLatched = false;
            return c.StatusValue;
        }

        if (c.Latched)
        {
            byte b = c.Access switch
            {
                1 => (byte)c.LatchValue,
                2 => (byte)(c.LatchValue >> 8),
                _ => c.LatchHighNext ? (byte)(c.LatchValue >> 8) : (byte)c.LatchValue,
            };
            if (c.Access != 3 || c.LatchHighNext)
            {
                c.Latched = false;
                c.LatchHighNext = false;
            }
            else
            {
                c.LatchHighNext = true;
            }

            return b;
        }

        ushort count = c.Count(now);
        switch (c.Access)
        {
            case 1:
                return (byte)count;
            case 2:
                return (byte)(count >> 8);
            default:
                byte value = c.ReadHighNext ? (byte)(count >> 8) : (byte)count;
                c.ReadHighNext = !c.ReadHighNext;
                return value;
        }
    }

    public void Write(ushort offset, ReadOnlySpan<byte> data)
    {
        if (offset > 3 || data.Length == 0)
        {
            return;
        }

        bool reprogrammed = false;
        lock (gate)
        {
            long now = clockNs();
            byte value = data[0];
            if (offset == 3)
            {
                WriteControl(value, now);
            }
            else
            {
                PitChannel c = channels[offset];
                int? load = null;
                switch (c.Access)
                {
                    case 1:
                        load = value;
                        break;
                    case 2:
                        load = value << 8;
                        break;
                    default:
                        if (!c.WriteHighNext)
                        {
                            c.WriteLatchLow = value;
                            c.WriteHighNext = true;
                            if (c.Mode == 0)
                            {
                                c.Counting = false; // mode 0: writing the first byte stops the count
                            }
                        }
                        else
                        {
                            load = c.WriteLatchLow | (value << 8);
                            c.WriteHighNext = false;
                        }

                        break;
                }

                if (load is { } count)
                {
                    c.Load(count, now);
                    if (offset == 0)
                    {
                        nextIrqNs = c.NextRisingEdge(now);
                        reprogrammed = true;
                    }
                }
            }
        }

        if (reprogrammed)
        {
            Reprogrammed?.Invoke();
        }
    }

    private void WriteControl(byte value, long now)
    {
        int select = value >> 6;
        if (select == 3)
        {
            // Read-back (11 /COUNT /STATUS C2 C1 C0 0): latch the count (bit 5 clear) and/or the status (bit 4
            // clear) of every selected counter. A latch already held is kept until read, as on the chip.
            for (int i = 0; i < 3; i++)
            {
                if ((value & (2 << i)) == 0)
                {
                    continue;
                }

                PitChannel counter = channels[i];
                if ((value & 0x20) == 0)
                {
                    Latch(counter, now);
                }

                if ((value & 0x10) == 0 && !counter.StatusLatched)
                {
                    counter.StatusValue = counter.Status(now);
                    counter.StatusLatched = true;
                }
            }

            return;
        }

        PitChannel c = channels[select];
        int access = (value >> 4) & 3;
        if (access == 0)
        {
            Latch(c, now);
            return;
        }

        c.Access = (byte)access;
        c.Mode = (byte)((value >> 1) & 7);
        c.Bcd = (value & 1) != 0;
        c.WriteHighNext = false;
        c.ReadHighNext = false;
        c.Latched = false;
        c.StatusLatched = false;
        // A control word stops the counter until a new count is written.
        c.Counting = false;
        if (select == 0)
        {
            nextIrqNs = null;
        }
    }

    private static void Latch(PitChannel c, long now)
    {
        if (!c.Latched)
        {
            c.LatchValue = c.Count(now);
            c.Latched = true;
            c.LatchHighNext = false;
        }
    }

    /// <summary>Channel 2's gate (port 0x61 bit 0): a rising edge restarts its count.</summary>
    public void SetChannel2Gate(bool high)
    {
        lock (gate)
        {
            PitChannel c = channels[2];
            if (high && !c.Gate)
            {
                c.LoadTimeNs = clockNs();
            }

            c.Gate = high;
        }
    }

    public bool Channel2Gate
    {
        get
        {
            lock (gate)
            {
                return channels[2].Gate;
            }
        }
    }

    /// <summary>Channel 2's OUT pin (port 0x61 bit 5).</summary>
    public bool Channel2Output
    {
        get
        {
            lock (gate)
            {
                return channels[2].Output(clockNs());
            }
        }
    }

    public byte[] SaveState()
    {
        lock (gate)
        {
            long now = clockNs();
            var w = new DeviceStateWriter(96);
            foreach (PitChannel c in channels)
            {
                c.Save(w, now);
            }

            w.WriteBoolean(nextIrqNs.HasValue);
            w.WriteInt64(nextIrqNs is { } due ? due - now : 0);
            foreach (PitChannel c in channels)
            {
                w.WriteBoolean(c.StatusLatched);
                w.WriteByte(c.StatusValue);
            }

            return w.ToArray();
        }
    }

    public void RestoreState(int version, ReadOnlySpan<byte> state)
    {
        // Version 1 (before the read-back status) is still understood: no status was latched.
        if (version != 1)
        {
            DeviceStateReader.RequireVersion(SectionName, StateVersion, version);
        }

        var r = new DeviceStateReader(SectionName, state);
        long now = clockNs();
        PitChannel[] loaded = [new(), new(), new()];
        foreach (PitChannel c in loaded)
        {
            c.Load(ref r, now);
        }

        bool hasNext = r.ReadBoolean();
        long nextIn = r.ReadInt64();
        if (version >= 2)
        {
            foreach (PitChannel c in loaded)
            {
                c.StatusLatched = r.ReadBoolean();
                c.StatusValue = r.ReadByte();
            }
        }

        r.EnsureFullyRead();
        lock (gate)
        {
            for (int i = 0; i < 3; i++)
            {
                channels[i] = loaded[i];
            }

            nextIrqNs = hasNext ? now + nextIn : null;
        }

        Reprogrammed?.Invoke();
    }
}
