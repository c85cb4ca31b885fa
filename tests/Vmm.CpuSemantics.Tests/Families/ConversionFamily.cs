using Iced.Intel;
using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>CBW, CWDE, CWD, CDQ, and MOVSX/MOVZX from 8 and 16 bits to 16 and 32, register (AH…BH too) or memory source.</summary>
public sealed class ConversionFamily
{
    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0xC0A);
        var cases = new List<TestCase>();
        foreach (var (code, width) in new[] { (Code.Cbw, 8), (Code.Cwde, 16), (Code.Cwd, 16), (Code.Cdq, 32) })
        {
            foreach (var value in factory.Values(width, randomCount: 40))
            {
                var c = factory.Begin();
                // Only the source part is set: the bits above it (and DX/EDX) stay random, for the conversion to overwrite.
                c.Fixed(OperandWidth.Accumulator(width), value);
                if (code is Code.Cwd or Code.Cdq)
                {
                    c.Claim(OperandWidth.Reg(width, 2));
                }

                cases.Add(c.Build(code.ToString(), Instruction.Create(code)));
            }
        }

        foreach (var mnemonic in new[] { "Movsx", "Movzx" })
        {
            foreach (var (to, from) in new[] { (16, 8), (32, 8), (16, 16), (32, 16) })
            {
                foreach (var value in factory.Values(from, randomCount: 30))
                {
                    var c = factory.Begin();
                    var destination = c.Reg(to, factory.NextUInt());
                    cases.Add(c.Build(Codes.Get($"{mnemonic}_r{to}_rm{from}"), destination, c.RegOrMem(from, value)));
                }
            }
        }

        return cases;
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
