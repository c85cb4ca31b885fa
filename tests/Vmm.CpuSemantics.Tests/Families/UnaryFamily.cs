using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>
/// INC and DEC (which keep CF: each value runs with CF clear and set), NEG (CF = operand ≠ 0) and NOT (no flags), at
/// 8, 16 and 32 bits, register or memory, and the one-byte INC/DEC r16/r32 forms.
/// </summary>
public sealed class UnaryFamily
{
    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0x0E6);
        var cases = new List<TestCase>();
        foreach (var mnemonic in new[] { "Inc", "Dec", "Neg", "Not" })
        {
            foreach (var width in OperandWidth.All)
            {
                foreach (var value in factory.Values(width, randomCount: 40))
                {
                    foreach (var carry in new[] { false, true })
                    {
                        var c = factory.Begin().Carry(carry);
                        // The one-byte forms (0x40+r, 0x48+r) exist for 16 and 32 bits.
                        if (mnemonic is "Inc" or "Dec" && width != 8 && factory.Next(3) == 0)
                        {
                            cases.Add(c.Build(Codes.Get($"{mnemonic}_r{width}"), c.Reg(width, value)));
                        }
                        else
                        {
                            cases.Add(c.Build(Codes.Get($"{mnemonic}_rm{width}"), c.RegOrMem(width, value)));
                        }
                    }
                }
            }
        }

        return cases;
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
