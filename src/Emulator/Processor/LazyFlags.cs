using System.Numerics;
using System.Runtime.CompilerServices;

namespace Vmm.Emulator.Processor;

/// <summary>
/// The arithmetic flags (CF PF AF ZF SF OF) from a <see cref="FlagOp"/> and its recorded values. The formulas are
/// QEMU's (target/i386/tcg/cc_helper_template.h), including for flags Intel leaves undefined (AF after a shift, SF
/// ZF PF after a multiply), so that this CPU and QEMU's TCG agree bit for bit.
/// </summary>
public static class LazyFlags
{
    public const uint CF = 1 << 0;
    public const uint PF = 1 << 2;
    public const uint AF = 1 << 4;
    public const uint ZF = 1 << 6;
    public const uint SF = 1 << 7;
    public const uint OF = 1 << 11;

    /// <summary>The six arithmetic flags.</summary>
    public const uint ArithmeticMask = CF | PF | AF | ZF | SF | OF;

    /// <summary>Width in bits of a width-dependent operation (8, 16 or 32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int BitsOf(FlagOp op) => 8 << ((int)(op - FlagOp.Mul8) % 3);

    /// <summary>The kind of operation without its width (the 8-bit member of its triple).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FlagOp KindOf(FlagOp op) => (FlagOp)((int)op - ((int)(op - FlagOp.Mul8) % 3));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Parity(uint value) => (BitOperations.PopCount(value & 0xFF) & 1) == 0 ? PF : 0;

    /// <remarks>
    /// One case per operation and width, each calling a formula with the width's mask and sign bit as constants: a
    /// single jump-table dispatch, no width arithmetic at run time (ROL/ROR materialize the flags on every execution).
    /// </remarks>
    public static uint ComputeAll(FlagOp op, uint dst, uint src, uint src2) => op switch
    {
        FlagOp.Eflags => src & ArithmeticMask,
        FlagOp.Adcox => (src & ~(CF | OF) & ArithmeticMask) | (dst != 0 ? CF : 0) | (src2 != 0 ? OF : 0),
        FlagOp.Mul8 => Mul(dst, src, 0xFF, 0x80),
        FlagOp.Mul16 => Mul(dst, src, 0xFFFF, 0x8000),
        FlagOp.Mul32 => Mul(dst, src, 0xFFFF_FFFF, 0x8000_0000),
        FlagOp.Add8 => Add(dst, src, 0xFF, 0x80),
        FlagOp.Add16 => Add(dst, src, 0xFFFF, 0x8000),
        FlagOp.Add32 => Add(dst, src, 0xFFFF_FFFF, 0x8000_0000),
        FlagOp.Adc8 => Adc(dst, src, src2, 0xFF, 0x80),
        FlagOp.Adc16 => Adc(dst, src, src2, 0xFFFF, 0x8000),
        FlagOp.Adc32 => Adc(dst, src, src2, 0xFFFF_FFFF, 0x8000_0000),
        FlagOp.Sub8 => Sub(dst, src, 0xFF, 0x80),
        FlagOp.Sub16 => Sub(dst, src, 0xFFFF, 0x8000),
        FlagOp.Sub32 => Sub(dst, src, 0xFFFF_FFFF, 0x8000_0000),
        FlagOp.Sbb8 => Sbb(dst, src, src2, 0xFF, 0x80),
        FlagOp.Sbb16 => Sbb(dst, src, src2, 0xFFFF, 0x8000),
        FlagOp.Sbb32 => Sbb(dst, src, src2, 0xFFFF_FFFF, 0x8000_0000),
        FlagOp.Logic8 => Result(dst, 0xFF, 0x80),
        FlagOp.Logic16 => Result(dst, 0xFFFF, 0x8000),
        FlagOp.Logic32 => Result(dst, 0xFFFF_FFFF, 0x8000_0000),
        FlagOp.Inc8 => Inc(dst, src, 0xFF, 0x80),
        FlagOp.Inc16 => Inc(dst, src, 0xFFFF, 0x8000),
        FlagOp.Inc32 => Inc(dst, src, 0xFFFF_FFFF, 0x8000_0000),
        FlagOp.Dec8 => Dec(dst, src, 0xFF, 0x80),
        FlagOp.Dec16 => Dec(dst, src, 0xFFFF, 0x8000),
        FlagOp.Dec32 => Dec(dst, src, 0xFFFF_FFFF, 0x8000_0000),
        FlagOp.Shl8 => Shl(dst, src, 0xFF, 0x80),
        FlagOp.Shl16 => Shl(dst, src, 0xFFFF, 0x8000),
        FlagOp.Shl32 => Shl(dst, src, 0xFFFF_FFFF, 0x8000_0000),
        FlagOp.Sar8 => Sar(dst, src, 0xFF, 0x80),
        FlagOp.Sar16 => Sar(dst, src, 0xFFFF, 0x8000),
        FlagOp.Sar32 => Sar(dst, src, 0xFFFF_FFFF, 0x8000_0000),
        _ => throw new InvalidOperationException($"no flags for {op}"),
    };

    /// <summary>ZF SF PF of the result (a logical operation's flags; the part every formula shares).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Result(uint dst, uint mask, uint sign)
    {
        dst &= mask;
        return (dst == 0 ? ZF : 0) | ((dst & sign) != 0 ? SF : 0) | Parity(dst);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Mul(uint dst, uint src, uint mask, uint sign)
    {
        uint cf = src != 0 ? CF : 0;
        return cf | Result(dst, mask, sign) | (cf != 0 ? OF : 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Add(uint dst, uint src, uint mask, uint sign)
    {
        dst &= mask;
        src &= mask;
        uint src1 = (dst - src) & mask;
        uint cf = dst < src ? CF : 0;
        uint af = (dst ^ src ^ src1) & AF;
        uint of = ((src1 ^ src ^ mask) & (src1 ^ dst) & sign) != 0 ? OF : 0;
        return cf | af | of | Result(dst, mask, sign);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Adc(uint dst, uint src, uint src2, uint mask, uint sign)
    {
        dst &= mask;
        src &= mask;
        uint src1 = (dst - src - src2) & mask;
        uint cf = (src2 != 0 ? dst <= src : dst < src) ? CF : 0;
        uint af = (dst ^ src ^ src1) & AF;
        uint of = ((src1 ^ src ^ mask) & (src1 ^ dst) & sign) != 0 ? OF : 0;
        return cf | af | of | Result(dst, mask, sign);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Sub(uint dst, uint src, uint mask, uint sign)
    {
        dst &= mask;
        src &= mask;
        uint src1 = (dst + src) & mask;
        uint cf = src1 < src ? CF : 0;
        uint af = (dst ^ src1 ^ src) & AF;
        uint of = ((src1 ^ src) & (src1 ^ dst) & sign) != 0 ? OF : 0;
        return cf | af | of | Result(dst, mask, sign);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Sbb(uint dst, uint src, uint src2, uint mask, uint sign)
    {
        dst &= mask;
        src &= mask;
        uint src1 = (dst + src + src2) & mask;
        uint cf = (src2 != 0 ? src1 <= src : src1 < src) ? CF : 0;
        uint af = (dst ^ src1 ^ src) & AF;
        uint of = ((src1 ^ src) & (src1 ^ dst) & sign) != 0 ? OF : 0;
        return cf | af | of | Result(dst, mask, sign);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Inc(uint dst, uint src, uint mask, uint sign)
    {
        dst &= mask;
        uint src1 = (dst - 1) & mask;
        uint af = (dst ^ src1 ^ 1) & AF;
        uint of = dst == sign ? OF : 0;
        return (src & CF) | af | of | Result(dst, mask, sign);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Dec(uint dst, uint src, uint mask, uint sign)
    {
        dst &= mask;
        uint src1 = (dst + 1) & mask;
        uint af = (dst ^ src1 ^ 1) & AF;
        uint of = dst == sign - 1 ? OF : 0;
        return (src & CF) | af | of | Result(dst, mask, sign);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Shl(uint dst, uint src, uint mask, uint sign)
    {
        dst &= mask;
        uint cf = (src & mask & sign) != 0 ? CF : 0;
        uint of = ((src ^ dst) & sign) != 0 ? OF : 0;
        return cf | of | Result(dst, mask, sign);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Sar(uint dst, uint src, uint mask, uint sign)
    {
        dst &= mask;
        uint cf = src & 1;
        uint of = ((src ^ dst) & sign) != 0 ? OF : 0;
        return cf | of | Result(dst, mask, sign);
    }

    /// <summary>CF alone, for ADC/SBB/RCL/RCR and the carry conditions: cheaper than all six.</summary>
    /// <remarks>
    /// Inlined: ADC, SBB, INC and DEC read CF on every execution, and inside the block loop a call costs more than
    /// the switch (registers saved around it, one shared indirect branch for every caller).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint ComputeCarry(FlagOp op, uint dst, uint src, uint src2)
    {
        switch (op)
        {
            case FlagOp.Add32:
                return dst < src ? 1u : 0;
            case FlagOp.Sub32:
                return dst + src < src ? 1u : 0;
            case FlagOp.Adc32:
                return (src2 != 0 ? dst <= src : dst < src) ? 1u : 0;
            case FlagOp.Sbb32:
                return (src2 != 0 ? dst + src + src2 <= src : dst + src + src2 < src) ? 1u : 0;
            case FlagOp.Sar8 or FlagOp.Sar16 or FlagOp.Sar32:
                return src & 1;
            case FlagOp.Shl32:
                return src >> 31;
            case FlagOp.Mul8 or FlagOp.Mul16 or FlagOp.Mul32:
                return src != 0 ? 1u : 0;
            case FlagOp.Logic8 or FlagOp.Logic16 or FlagOp.Logic32:
                return 0;
            case FlagOp.Inc8 or FlagOp.Inc16 or FlagOp.Inc32 or FlagOp.Dec8 or FlagOp.Dec16 or FlagOp.Dec32:
                return src & CF;
            case FlagOp.Eflags:
                return src & CF;
            case FlagOp.Adcox:
                return dst != 0 ? 1u : 0;
            default:
                return ComputeAll(op, dst, src, src2) & CF;
        }
    }
}
