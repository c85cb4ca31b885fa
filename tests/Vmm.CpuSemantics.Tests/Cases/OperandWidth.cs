using Iced.Intel;

namespace Vmm.CpuSemantics.Tests.Cases;

/// <summary>Operand sizes 8, 16 and 32, and the registers of each.</summary>
public static class OperandWidth
{
    public static readonly int[] All = [8, 16, 32];

    public static uint Mask(int width) => width == 32 ? 0xFFFF_FFFF : (1u << width) - 1;

    public static uint SignBit(int width) => 1u << (width - 1);

    /// <summary>The register numbered <paramref name="number"/> (0-7, x86 encoding order) of <paramref name="width"/> bits: AL CL DL BL AH CH DH BH, AX … DI, EAX … EDI.</summary>
    public static Register Reg(int width, int number) => width switch
    {
        8 => Register.AL + number,
        16 => Register.AX + number,
        32 => Register.EAX + number,
        _ => throw new ArgumentOutOfRangeException(nameof(width)),
    };

    /// <summary>The accumulator of <paramref name="width"/> bits.</summary>
    public static Register Accumulator(int width) => Reg(width, 0);

    /// <summary>Sign-extends the low <paramref name="width"/> bits of <paramref name="value"/>.</summary>
    public static long SignExtend(uint value, int width) => width == 32 ? (int)value : ((long)(value & Mask(width)) ^ SignBit(width)) - SignBit(width);
}
