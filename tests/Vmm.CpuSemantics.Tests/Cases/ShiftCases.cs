using Vmm.CpuSemantics.Tests.Harness;

namespace Vmm.CpuSemantics.Tests.Cases;

/// <summary>
/// Cases for the shift and rotate group (C0/C1 by imm8, D0/D1 by 1, D2/D3 by CL): every count of
/// <see cref="Counts"/> plus random ones, each with edge and random values, by CL and by immediate (and by the
/// one-operand form when the count is 1), register or memory, CF in random.
/// </summary>
public static class ShiftCases
{
    /// <summary>Counts around every boundary: 0 (no flag changes), 1 (OF defined), the widths, and the 5-bit mask.</summary>
    public static readonly byte[] Counts = [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33];

    public static IEnumerable<TestCase> For(CaseFactory factory, string mnemonic, int valuesPerCount)
    {
        foreach (var width in OperandWidth.All)
        {
            var counts = Counts.Concat(new[] { (byte)factory.Next(256), (byte)(0x20 | factory.Next(0xE0)), (byte)0xFF });
            foreach (var count in counts)
            {
                var edges = EdgeValues.For(width);
                for (var i = 0; i < valuesPerCount; i++)
                {
                    var value = i % 2 == 0 ? factory.Pick(edges) : factory.Interesting(width);
                    yield return One(factory, mnemonic, width, count, value, byCl: true);
                    yield return One(factory, mnemonic, width, count, value, byCl: false);
                }
            }
        }
    }

    private static TestCase One(CaseFactory factory, string mnemonic, int width, byte count, uint value, bool byCl)
    {
        var c = factory.Begin();
        c.Undefined = UndefinedFlags(mnemonic, width, count);
        if (byCl)
        {
            var cl = c.Fixed(Iced.Intel.Register.CL, count);
            return c.Build(Codes.Get($"{mnemonic}_rm{width}_CL"), c.RegOrMem(width, value), cl);
        }

        if (count == 1 && factory.NextBool())
        {
            return c.Build(Codes.Get($"{mnemonic}_rm{width}_1"), c.RegOrMem(width, value), Operand.Imm(1));
        }

        return c.Build(Codes.Get($"{mnemonic}_rm{width}_imm8"), c.RegOrMem(width, value), Operand.Imm(count));
    }

    /// <summary>What the SDM leaves undefined for a shift or rotate by <paramref name="count"/> (masked to 5 bits).</summary>
    public static uint UndefinedFlags(string mnemonic, int width, byte count)
    {
        var masked = count & 0x1F;
        if (masked == 0)
        {
            return 0;
        }

        var undefined = masked == 1 ? 0 : EFlags.OF;
        if (mnemonic is "Shl" or "Sal" or "Shr" or "Sar")
        {
            undefined |= EFlags.AF;
            if (mnemonic != "Sar" && masked >= width)
            {
                undefined |= EFlags.CF;
            }
        }

        return undefined;
    }
}
