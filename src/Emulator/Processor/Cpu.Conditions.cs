using System.Runtime.CompilerServices;

namespace Vmm.Emulator.Processor;

/// <summary>The sixteen conditions of Jcc, SETcc and LOOPcc, evaluated from the lazy flags.</summary>
public sealed partial class Cpu
{
    /// <summary>True when condition <paramref name="cc"/> holds (0 O, 1 NO, 2 B, 3 AE, 4 E, 5 NE, 6 BE, 7 A, 8 S, 9 NS, 10 P, 11 NP, 12 L, 13 GE, 14 LE, 15 G).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Condition(int cc)
    {
        bool holds = (cc >> 1) switch
        {
            1 => Carry() != 0,
            2 => ZeroFlag(),
            _ => ConditionSlow(cc >> 1),
        };
        return holds ^ ((cc & 1) != 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool ZeroFlag()
    {
        // Every operation but these two keeps the result in CcDst.
        if (CcOp is FlagOp.Eflags or FlagOp.Adcox)
        {
            return (LazyFlags.ComputeAll(CcOp, CcDst, CcSrc, CcSrc2) & LazyFlags.ZF) != 0;
        }

        uint mask = 0xFFFF_FFFFu >> (32 - LazyFlags.BitsOf(CcOp));
        return (CcDst & mask) == 0;
    }

    private bool ConditionSlow(int pair)
    {
        uint flags = LazyFlags.ComputeAll(CcOp, CcDst, CcSrc, CcSrc2);
        bool sf = (flags & LazyFlags.SF) != 0;
        bool of = (flags & LazyFlags.OF) != 0;
        bool zf = (flags & LazyFlags.ZF) != 0;
        return pair switch
        {
            0 => of,
            3 => (flags & LazyFlags.CF) != 0 || zf,
            4 => sf,
            5 => (flags & LazyFlags.PF) != 0,
            6 => sf != of,
            _ => zf || sf != of,
        };
    }
}
