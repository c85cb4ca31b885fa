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

    public static uint ComputeAll(FlagOp op, uint dst, uint src, uint src2)
    {
        switch (op)
        {
            case FlagOp.Eflags:
                return src & ArithmeticMask;
            case FlagOp.Adcox:
                return (src & ~(CF | OF) & ArithmeticMask) | (dst != 0 ? CF : 0) | (src2 != 0 ? OF : 0);
        }

        int bits = BitsOf(op);
        uint mask = bits == 32 ? 0xFFFF_FFFFu : (1u << bits) - 1;
        uint sign = 1u << (bits - 1);
        dst &= mask;
        uint zf = dst == 0 ? ZF : 0;
        uint sf = (dst & sign) != 0 ? SF : 0;
        uint pf = Parity(dst);
        switch (KindOf(op))
        {
            case FlagOp.Mul8:
            {
                uint cf = src != 0 ? CF : 0;
                return cf | pf | zf | sf | (cf != 0 ? OF : 0);
            }

            case FlagOp.Add8:
            {
                src &= mask;
                uint src1 = (dst - src) & mask;
                uint cf = dst < src ? CF : 0;
                uint af = (dst ^ src ^ src1) & AF;
                uint of = ((src1 ^ src ^ mask) & (src1 ^ dst) & sign) != 0 ? OF : 0;
                return cf | pf | af | zf | sf | of;
            }

            case FlagOp.Adc8:
            {
                src &= mask;
                uint src1 = (dst - src - src2) & mask;
                uint cf = (src2 != 0 ? dst <= src : dst < src) ? CF : 0;
                uint af = (dst ^ src ^ src1) & AF;
                uint of = ((src1 ^ src ^ mask) & (src1 ^ dst) & sign) != 0 ? OF : 0;
                return cf | pf | af | zf | sf | of;
            }

            case FlagOp.Sub8:
            {
                src &= mask;
                uint src1 = (dst + src) & mask;
                uint cf = src1 < src ? CF : 0;
                uint af = (dst ^ src1 ^ src) & AF;
                uint of = ((src1 ^ src) & (src1 ^ dst) & sign) != 0 ? OF : 0;
                return cf | pf | af | zf | sf | of;
            }

            case FlagOp.Sbb8:
            {
                src &= mask;
                uint src1 = (dst + src + src2) & mask;
                uint cf = (src2 != 0 ? src1 <= src : src1 < src) ? CF : 0;
                uint af = (dst ^ src1 ^ src) & AF;
                uint of = ((src1 ^ src) & (src1 ^ dst) & sign) != 0 ? OF : 0;
                return cf | pf | af | zf | sf | of;
            }

            case FlagOp.Logic8:
                return pf | zf | sf;

            case FlagOp.Inc8:
            {
                uint src1 = (dst - 1) & mask;
                uint af = (dst ^ src1 ^ 1) & AF;
                uint of = dst == sign ? OF : 0;
                return (src & CF) | pf | af | zf | sf | of;
            }

            case FlagOp.Dec8:
            {
                uint src1 = (dst + 1) & mask;
                uint af = (dst ^ src1 ^ 1) & AF;
                uint of = dst == sign - 1 ? OF : 0;
                return (src & CF) | pf | af | zf | sf | of;
            }

            case FlagOp.Shl8:
            {
                uint cf = (src & mask & sign) != 0 ? CF : 0;
                uint of = ((src ^ dst) & sign) != 0 ? OF : 0;
                return cf | pf | zf | sf | of;
            }

            case FlagOp.Sar8:
            {
                uint cf = src & 1;
                uint of = ((src ^ dst) & sign) != 0 ? OF : 0;
                return cf | pf | zf | sf | of;
            }

            default:
                throw new InvalidOperationException($"no flags for {op}");
        }
    }

    /// <summary>CF alone, for ADC/SBB/RCL/RCR and the carry conditions: cheaper than all six.</summary>
    public static uint ComputeCarry(FlagOp op, uint dst, uint src, uint src2)
    {
        switch (op)
        {
            case FlagOp.Add32:
                return dst < src ? 1u : 0;
            case FlagOp.Sub32:
                return dst + src < src ? 1u : 0;
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
