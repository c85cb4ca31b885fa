using Vmm.Accelerator.State;

namespace Vmm.Emulator.Processor;

/// <summary>
/// Segment registers: loading a selector (real mode: the base only, which is what leaves unreal mode's limits in
/// place; protected mode: a descriptor from the GDT or LDT, checked as the 80386 checks it), and the fast-path limits
/// derived from each hidden cache.
/// </summary>
public sealed unsafe partial class Cpu
{
    /// <summary>Installs a whole hidden descriptor cache (state load, protected-mode load) and its fast-path limits.</summary>
    public void LoadSegmentCache(int seg, Segment cache)
    {
        Segments[seg] = cache;
        SegBase[seg] = (uint)cache.Base;
        RefreshSegmentLimits(seg);
    }

    /// <summary>
    /// The fast path takes an access when its last byte is within these limits; anything the limit alone cannot
    /// decide (protected-mode type checks, expand-down, unusable segments) gets -1 and the slow check.
    /// </summary>
    private void RefreshSegmentLimits(int seg)
    {
        ref Segment cache = ref Segments[seg];
        bool expandDown = (cache.Type & 0xC) == 0x4;
        if (expandDown || (ProtectedMode && (cache.Unusable || !cache.Present)))
        {
            ReadLimit[seg] = -1;
            WriteLimit[seg] = -1;
            return;
        }

        if (!ProtectedMode)
        {
            // Real mode checks the limit but not the type: a CS override may be written through.
            ReadLimit[seg] = cache.Limit;
            WriteLimit[seg] = cache.Limit;
            return;
        }

        bool code = (cache.Type & 0x8) != 0;
        bool readable = !code || (cache.Type & 0x2) != 0;
        bool writable = !code && (cache.Type & 0x2) != 0;
        ReadLimit[seg] = readable ? cache.Limit : -1;
        WriteLimit[seg] = writable ? cache.Limit : -1;
    }

    private void RefreshAllSegmentLimits()
    {
        for (int i = 0; i < SegmentIndex.Count; i++)
        {
            RefreshSegmentLimits(i);
        }
    }

    /// <summary>
    /// MOV/POP to a segment register, LDS and friends: a real-mode load sets selector and base and keeps the rest of
    /// the cache; a protected-mode load reads and checks the descriptor.
    /// </summary>
    public void LoadSegment(int seg, ushort selector)
    {
        if (!ProtectedMode)
        {
            ref Segment cache = ref Segments[seg];
            cache.Selector = selector;
            cache.Base = (uint)selector << 4;
            SegBase[seg] = (uint)cache.Base;
            if (seg == SegmentIndex.Cs)
            {
                Cpl = 0;
            }

            return;
        }

        if (seg == SegmentIndex.Cs)
        {
            throw new InvalidOperationException("CS is loaded by far transfers (LoadCodeSegment)");
        }

        if ((selector & ~3) == 0)
        {
            if (seg == SegmentIndex.Ss)
            {
                throw new CpuException(ExceptionVector.GeneralProtection, 0);
            }

            LoadSegmentCache(seg, new Segment { Selector = selector, Unusable = true });
            return;
        }

        ulong raw = ReadDescriptor(selector, ExceptionVector.GeneralProtection);
        Segment loaded = DecodeDescriptor(selector, raw);
        bool code = (loaded.Type & 0x8) != 0;
        int rpl = selector & 3;
        if (seg == SegmentIndex.Ss)
        {
            if (!loaded.CodeOrData || code || (loaded.Type & 0x2) == 0 || rpl != Cpl || loaded.Dpl != Cpl)
            {
                throw new CpuException(ExceptionVector.GeneralProtection, (uint)(selector & ~3));
            }

            if (!loaded.Present)
            {
                throw new CpuException(ExceptionVector.StackFault, (uint)(selector & ~3));
            }
        }
        else
        {
            bool readable = !code || (loaded.Type & 0x2) != 0;
            bool conforming = code && (loaded.Type & 0x4) != 0;
            if (!loaded.CodeOrData || !readable || (!conforming && (rpl > loaded.Dpl || Cpl > loaded.Dpl)))
            {
                throw new CpuException(ExceptionVector.GeneralProtection, (uint)(selector & ~3));
            }

            if (!loaded.Present)
            {
                throw new CpuException(ExceptionVector.SegmentNotPresent, (uint)(selector & ~3));
            }
        }

        MarkAccessed(selector, raw);
        loaded.Type |= 1;
        LoadSegmentCache(seg, loaded);
    }

    /// <summary>
    /// Loads CS for a far JMP, CALL, RET or IRET, or an interrupt: in real mode selector and base; in protected mode
    /// a present code segment the privilege rules allow (no call gates or task switches: those raise #GP).
    /// </summary>
    /// <param name="returning">A far RET or IRET: the new CPL is the selector's RPL, which may be outer.</param>
    public void LoadCodeSegment(ushort selector, bool returning = false, int? newCpl = null)
    {
        if (!ProtectedMode)
        {
            ref Segment cache = ref Segments[SegmentIndex.Cs];
            cache.Selector = selector;
            cache.Base = (uint)selector << 4;
            SegBase[SegmentIndex.Cs] = (uint)cache.Base;
            Cpl = 0;
            return;
        }

        uint error = (uint)(selector & ~3);
        if ((selector & ~3) == 0)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }

        ulong raw = ReadDescriptor(selector, ExceptionVector.GeneralProtection);
        Segment loaded = DecodeDescriptor(selector, raw);
        if (!loaded.CodeOrData || (loaded.Type & 0x8) == 0)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, error);
        }

        int rpl = selector & 3;
        bool conforming = (loaded.Type & 0x4) != 0;
        int cpl = newCpl ?? (returning ? rpl : Cpl);
        if (newCpl is null)
        {
            if (returning ? rpl < Cpl || (conforming ? loaded.Dpl > rpl : loaded.Dpl != rpl)
                          : conforming ? loaded.Dpl > Cpl : rpl > Cpl || loaded.Dpl != Cpl)
            {
                throw new CpuException(ExceptionVector.GeneralProtection, error);
            }
        }

        if (!loaded.Present)
        {
            throw new CpuException(ExceptionVector.SegmentNotPresent, error);
        }

        MarkAccessed(selector, raw);
        loaded.Type |= 1;
        loaded.Selector = (ushort)((selector & ~3) | cpl);
        LoadSegmentCache(SegmentIndex.Cs, loaded);
        Cpl = cpl;
    }

    /// <summary>After a return to an outer privilege level: data segments the new CPL may not use become unusable.</summary>
    public void InvalidateInnerSegments()
    {
        foreach (int seg in (ReadOnlySpan<int>)[SegmentIndex.Es, SegmentIndex.Ds, SegmentIndex.Fs, SegmentIndex.Gs])
        {
            ref Segment cache = ref Segments[seg];
            bool conformingCode = (cache.Type & 0xC) == 0xC;
            if (!cache.Unusable && !conformingCode && cache.Dpl < Cpl)
            {
                LoadSegmentCache(seg, new Segment { Selector = 0, Unusable = true });
            }
        }
    }

    /// <summary>The 8 bytes of the descriptor <paramref name="selector"/> names, from the GDT or the LDT.</summary>
    public ulong ReadDescriptor(ushort selector, byte vector)
    {
        bool local = (selector & 4) != 0;
        uint tableBase = local ? (uint)Ldtr.Base : (uint)Gdtr.Base;
        uint tableLimit = local ? Ldtr.Limit : Gdtr.Limit;
        if (local && Ldtr.Unusable)
        {
            throw new CpuException(vector, (uint)(selector & ~3));
        }

        uint index = (uint)(selector & ~7);
        if (index + 7 > tableLimit)
        {
            throw new CpuException(vector, (uint)(selector & ~3));
        }

        return ReadLinear(tableBase + index, 4) | ((ulong)ReadLinear(tableBase + index + 4, 4) << 32);
    }

    /// <summary>Sets the accessed bit of a code or data descriptor in its table, as the CPU does on a load.</summary>
    private void MarkAccessed(ushort selector, ulong raw)
    {
        if ((raw & (1ul << 40)) != 0)
        {
            return;
        }

        uint tableBase = (selector & 4) != 0 ? (uint)Ldtr.Base : (uint)Gdtr.Base;
        uint at = tableBase + (uint)(selector & ~7) + 5;
        WriteLinear(at, (byte)((raw >> 40) | 1), 1);
    }

    /// <summary>A descriptor as a hidden cache (KVM's kvm_segment layout, limit scaled by G).</summary>
    public static Segment DecodeDescriptor(ushort selector, ulong raw)
    {
        uint limit = (uint)(raw & 0xFFFF) | (uint)((raw >> 32) & 0xF_0000);
        bool granularity = (raw & (1ul << 55)) != 0;
        if (granularity)
        {
            limit = (limit << 12) | 0xFFF;
        }

        return new Segment
        {
            Selector = selector,
            Base = (uint)((raw >> 16) & 0xFF_FFFF) | (uint)((raw >> 32) & 0xFF00_0000),
            Limit = limit,
            Type = (byte)((raw >> 40) & 0xF),
            CodeOrData = (raw & (1ul << 44)) != 0,
            Dpl = (byte)((raw >> 45) & 3),
            Present = (raw & (1ul << 47)) != 0,
            Available = (raw & (1ul << 52)) != 0,
            Long = (raw & (1ul << 53)) != 0,
            DefaultBig = (raw & (1ul << 54)) != 0,
            Granularity = granularity,
        };
    }
}
