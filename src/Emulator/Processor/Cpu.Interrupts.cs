using Vmm.Accelerator.State;

namespace Vmm.Emulator.Processor;

/// <summary>
/// Interrupt and exception delivery: through the real-mode IVT (IDTR base and limit respected), or the protected-mode
/// IDT's interrupt and trap gates (16- and 32-bit, with the stack switch through the TSS for an inner privilege
/// level). An exception raised while delivering another becomes a double fault by the 80386's rules, and one raised
/// while delivering a double fault shuts the CPU down (triple fault). Task gates are not supported: they raise #GP.
/// </summary>
public sealed unsafe partial class Cpu
{
    /// <summary>Set when a triple fault shut the CPU down: the vCPU reports it and runs no further.</summary>
    public bool ShutDown;

    /// <summary>
    /// Delivers an exception raised by the instruction at <see cref="Eip"/> (faults point at it; the caller sets
    /// EIP past the instruction for traps). Returns false on a triple fault (<see cref="ShutDown"/>).
    /// </summary>
    public bool DeliverException(CpuException exception)
    {
        byte vector = exception.Vector;
        uint? errorCode = exception.ErrorCode;
        while (true)
        {
            try
            {
                DeliverInterrupt(vector, errorCode, software: false, returnEip: Eip);
                return true;
            }
            catch (CpuException again)
            {
                if (vector == ExceptionVector.DoubleFault)
                {
                    ShutDown = true;
                    return false;
                }

                if (ExceptionVector.IsContributory(vector) && ExceptionVector.IsContributory(again.Vector))
                {
                    vector = ExceptionVector.DoubleFault;
                    errorCode = 0;
                }
                else
                {
                    vector = again.Vector;
                    errorCode = again.ErrorCode;
                }
            }
        }
    }

    /// <summary>INT n, INT3, INTO: a software interrupt returning to <paramref name="returnEip"/>. A fault while delivering it is an ordinary exception.</summary>
    public void SoftwareInterrupt(byte vector, uint returnEip)
    {
        try
        {
            DeliverInterrupt(vector, null, software: true, returnEip);
        }
        catch (CpuException fault)
        {
            if (!DeliverException(fault))
            {
                return;
            }
        }
    }

    /// <summary>Pushes the return frame and enters the handler. Throws <see cref="CpuException"/> when it cannot.</summary>
    public void DeliverInterrupt(byte vector, uint? errorCode, bool software, uint returnEip)
    {
        Halted = false;
        if (!ProtectedMode)
        {
            DeliverReal(vector, returnEip);
        }
        else
        {
            DeliverProtected(vector, errorCode, software, returnEip);
        }

        Stop |= StopJumped;
    }

    private void DeliverReal(byte vector, uint returnEip)
    {
        uint entry = (uint)vector * 4;
        if (entry + 3 > Idtr.Limit)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, (uint)vector * 8 + 2);
        }

        uint target = ReadLinear((uint)Idtr.Base + entry, 4);
        uint flags = Eflags;
        Push16((ushort)flags);
        Push16(Segments[SegmentIndex.Cs].Selector);
        Push16((ushort)returnEip);
        FlagsRest &= ~(IF | TF | AC | RF);
        LoadCodeSegment((ushort)(target >> 16));
        Eip = target & 0xFFFF;
    }

    private void DeliverProtected(byte vector, uint? errorCode, bool software, uint returnEip)
    {
        uint gateError = (uint)vector * 8 + 2;
        uint entry = (uint)vector * 8;
        if (entry + 7 > Idtr.Limit)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, gateError);
        }

        ulong gate = ReadLinear((uint)Idtr.Base + entry, 4) | ((ulong)ReadLinear((uint)Idtr.Base + entry + 4, 4) << 32);
        int type = (int)(gate >> 40) & 0x1F;
        int gateDpl = (int)(gate >> 45) & 3;
        bool gate32 = type is 0xE or 0xF;
        if (type is not (0x6 or 0x7 or 0xE or 0xF))
        {
            // Task gates (0x5) and anything else: not supported here.
            throw new CpuException(ExceptionVector.GeneralProtection, gateError);
        }

        if (software && gateDpl < Cpl)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, gateError);
        }

        if ((gate & (1ul << 47)) == 0)
        {
            throw new CpuException(ExceptionVector.SegmentNotPresent, gateError);
        }

        ushort selector = (ushort)(gate >> 16);
        uint offset = (uint)(gate & 0xFFFF) | (gate32 ? (uint)(gate >> 32) & 0xFFFF_0000 : 0);
        if ((selector & ~3) == 0)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }

        Segment target = DecodeDescriptor(selector, ReadDescriptor(selector, ExceptionVector.GeneralProtection));
        if (!target.CodeOrData || (target.Type & 0x8) == 0 || target.Dpl > Cpl)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, (uint)(selector & ~3));
        }

        if (!target.Present)
        {
            throw new CpuException(ExceptionVector.SegmentNotPresent, (uint)(selector & ~3));
        }

        bool conforming = (target.Type & 0x4) != 0;
        int newCpl = conforming ? Cpl : target.Dpl;
        int size = gate32 ? 4 : 2;
        uint flags = Eflags;
        ushort oldCs = Segments[SegmentIndex.Cs].Selector;
        if (newCpl < Cpl)
        {
            // Inner privilege: the handler's stack comes from the TSS, and the old SS:ESP goes on it.
            (ushort newSs, uint newEsp) = StackFromTss(newCpl);
            ushort oldSs = Segments[SegmentIndex.Ss].Selector;
            uint oldEsp = Regs[RegisterIndex.Esp];
            int oldCpl = Cpl;
            Cpl = newCpl;
            try
            {
                LoadSegment(SegmentIndex.Ss, (ushort)((newSs & ~3) | newCpl));
            }
            catch (CpuException e) when (e.Vector == ExceptionVector.GeneralProtection)
            {
                Cpl = oldCpl;
                throw new CpuException(ExceptionVector.InvalidTss, (uint)(newSs & ~3));
            }

            Regs[RegisterIndex.Esp] = newEsp;
            Push(oldSs, size);
            Push(oldEsp, size);
        }

        Push(flags, size);
        Push(oldCs, size);
        Push(returnEip, size);
        if (errorCode is { } code)
        {
            Push(code, size);
        }

        LoadCodeSegment(selector, newCpl: newCpl);
        Eip = gate32 ? offset : offset & 0xFFFF;
        uint clear = TF | NT | RF | VM;
        if ((type & 1) == 0)
        {
            clear |= IF;
        }

        FlagsRest &= ~clear;
    }

    /// <summary>SS:ESP for privilege level <paramref name="cpl"/> from the current TSS (32- or 16-bit).</summary>
    private (ushort Ss, uint Esp) StackFromTss(int cpl)
    {
        bool tss32 = (Tr.Type & 0x8) != 0;
        uint at = tss32 ? (uint)(4 + (cpl * 8)) : (uint)(2 + (cpl * 4));
        uint span = tss32 ? 6u : 4u;
        if (Tr.Unusable || at + span - 1 > Tr.Limit)
        {
            throw new CpuException(ExceptionVector.InvalidTss, Tr.Selector & ~3u);
        }

        uint tssBase = (uint)Tr.Base;
        return tss32
            ? ((ushort)ReadLinear(tssBase + at + 4, 2), ReadLinear(tssBase + at, 4))
            : ((ushort)ReadLinear(tssBase + at + 2, 2), ReadLinear(tssBase + at, 2));
    }
}
