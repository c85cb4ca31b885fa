using Iced.Intel;
using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>
/// SHLD and SHRD at 16 and 32 bits, by imm8 and CL, register or memory destination. Counts include 17-31 at 16 bits,
/// where the SDM leaves result and flags undefined: QEMU's answer (a 32-bit shift of the concatenation) is the rule.
/// </summary>
public sealed class DoubleShiftFamily
{
    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0xD5);
        var cases = new List<TestCase>();
        foreach (var mnemonic in new[] { "Shld", "Shrd" })
        {
            foreach (var width in new[] { 16, 32 })
            {
                var counts = ShiftCases.Counts.Concat(new[] { (byte)18, (byte)24, (byte)30, (byte)factory.Next(256), (byte)factory.Next(256) });
                foreach (var count in counts)
                {
                    for (var i = 0; i < 12; i++)
                    {
                        var byCl = i % 2 == 0;
                        var c = factory.Begin();
                        c.Undefined = UndefinedFlags(width, count);
                        var cl = byCl ? c.Fixed(Register.CL, count) : Register.None;
                        var destination = c.RegOrMem(width, i < 4 ? factory.Pick(EdgeValues.For(width)) : factory.Interesting(width));
                        var source = c.Reg(width, factory.Interesting(width));
                        var form = $"{mnemonic}_rm{width}_r{width}_{(byCl ? "CL" : "imm8")}";
                        cases.Add(byCl
                            ? c.Build(Codes.Get(form), destination, source, cl)
                            : c.Build(Codes.Get(form), destination, source, Operand.Imm(count)));
                    }
                }
            }
        }

        return cases;
    }

    private static uint UndefinedFlags(int width, byte count)
    {
        var masked = count & 0x1F;
        return masked == 0 ? 0
            : masked > width ? EFlags.Arithmetic
            : masked == 1 ? EFlags.AF
            : EFlags.AF | EFlags.OF;
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
