using Iced.Intel;
using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>
/// BT, BTS, BTR, BTC at 16 and 32 bits with a register or imm8 bit offset, on a register (offset taken modulo the
/// width) or memory, where a register offset addresses a bit string: negative and large offsets reach other words
/// of the data area. BSF and BSR, including a zero source (ZF = 1, destination undefined: QEMU leaves it).
/// </summary>
public sealed class BitFamily
{
    /// <summary>The bit-string cases' operand sits in the middle of this much data, so offsets of ±256 bits stay inside.</summary>
    private const int BitStringData = 96;

    private const int BitStringBase = 40;

    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0xB17);
        var cases = new List<TestCase>();
        foreach (var mnemonic in new[] { "Bt", "Bts", "Btr", "Btc" })
        {
            foreach (var width in new[] { 16, 32 })
            {
                for (var i = 0; i < 160; i++)
                {
                    var c = factory.Begin();
                    c.Undefined = EFlags.OF | EFlags.SF | EFlags.AF | EFlags.PF;
                    var value = factory.Interesting(width);
                    switch (i % 4)
                    {
                        case 0:
                        {
                            var destination = c.Reg(width, value);
                            cases.Add(c.Build(Codes.Get($"{mnemonic}_rm{width}_r{width}"), destination, c.Reg(width, factory.NextUInt())));
                            break;
                        }

                        case 1:
                            cases.Add(c.Build(Codes.Get($"{mnemonic}_rm{width}_imm8"), c.RegOrMem(width, value), Operand.Imm(factory.Next(256))));
                            break;
                        default:
                        {
                            // A bit string: the offset register is signed and may leave the addressed word.
                            c.State.Data = factory.NextBytes(BitStringData);
                            var memory = c.MemAt(BitStringBase, width / 8, value);
                            var offset = factory.Next(2 * 8 * (BitStringBase - 4)) - 8 * (BitStringBase - 4);
                            cases.Add(c.Build(Codes.Get($"{mnemonic}_rm{width}_r{width}"), memory, c.Reg(width, (uint)offset)));
                            break;
                        }
                    }
                }
            }
        }

        foreach (var mnemonic in new[] { "Bsf", "Bsr" })
        {
            foreach (var width in new[] { 16, 32 })
            {
                foreach (var source in factory.Values(width, randomCount: 80).Concat(Enumerable.Repeat(0u, 16)))
                {
                    var c = factory.Begin();
                    c.Undefined = EFlags.CF | EFlags.OF | EFlags.SF | EFlags.AF | EFlags.PF;
                    var destination = c.Reg(width, factory.NextUInt());
                    var operand = c.RegOrMem(width, source);
                    cases.Add(c.Build(Codes.Get($"{mnemonic}_r{width}_rm{width}"), destination, operand) with
                    {
                        Form = $"{BuildForm(mnemonic, width, operand)}{(source == 0 ? " (source 0)" : "")}",
                    });
                }
            }
        }

        return cases;
    }

    private static string BuildForm(string mnemonic, int width, Operand operand) =>
        CaseBuilder.FormName(Codes.Get($"{mnemonic}_r{width}_rm{width}"), operand);

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
