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
        // Every operation but Eflags and Adcox keeps the result in CcDst: their mask is 0, for the slow path.
        ReadOnlySpan<uint> resultMasks = ResultMasks;
        uint op = (uint)CcOp;
        if (op < (uint)resultMasks.Length && resultMasks[(int)op] is var mask and not 0)
        {
            return (CcDst & mask) == 0;
        }

        return (LazyFlags.ComputeAll(CcOp, CcDst, CcSrc, CcSrc2) & LazyFlags.ZF) != 0;
    }

    /// <summary>By <see cref="FlagOp"/>: the bits of CcDst that are the result (a table: JNZ/JZ run in every loop).</summary>
    private static ReadOnlySpan<uint> ResultMasks =>
    [
        0,
        0xFF, 0xFFFF, 0xFFFF_FFFF, // Mul
        0xFF, 0xFFFF, 0xFFFF_FFFF, // Add
        0xFF, 0xFFFF, 0xFFFF_FFFF, // Adc
        0xFF, 0xFFFF, 0xFFFF_FFFF, // Sub
        0xFF, 0xFFFF, 0xFFFF_FFFF, // Sbb
        0xFF, 0xFFFF, 0xFFFF_FFFF, // Logic
        0xFF, 0xFFFF, 0xFFFF_FFFF, // Inc
        0xFF, 0xFFFF, 0xFFFF_FFFF, // Dec
        0xFF, 0xFFFF, 0xFFFF_FFFF, // Shl
        0xFF, 0xFFFF, 0xFFFF_FFFF, // Sar
        0, // Adcox
    ];

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
