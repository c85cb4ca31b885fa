using Iced.Intel;
using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>
/// The BCD adjustments: DAA and DAS for every AL with every CF/AF; AAA and AAS for every AL with every CF/AF and a
/// random AH; AAM and AAD with base 10, random bases and (AAM) base 0, which raises #DE. Much of their flag output
/// is undefined in the SDM and differs between CPU generations: QEMU's is the rule.
/// </summary>
public sealed class BcdFamily
{
    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0xBCD);
        var cases = new List<TestCase>();
        foreach (var (code, undefined) in new[]
                 {
                     (Code.Daa, EFlags.OF), (Code.Das, EFlags.OF),
                     (Code.Aaa, EFlags.OF | EFlags.SF | EFlags.ZF | EFlags.PF), (Code.Aas, EFlags.OF | EFlags.SF | EFlags.ZF | EFlags.PF),
                 })
        {
            for (var al = 0; al < 256; al++)
            {
                for (var carries = 0; carries < 4; carries++)
                {
                    var c = factory.Begin();
                    c.Undefined = undefined;
                    c.State.SetFlags(EFlags.CF, (carries & 1) != 0);
                    c.State.SetFlags(EFlags.AF, (carries & 2) != 0);
                    c.Fixed(Register.AX, (uint)(factory.Next(256) << 8 | al));
                    cases.Add(c.Build(code.ToString(), Instruction.Create(code)));
                }
            }
        }

        foreach (var code in new[] { Code.Aam_imm8, Code.Aad_imm8 })
        {
            var bases = Enumerable.Repeat(10, 256).Concat(Enumerable.Range(0, 64).Select(_ => factory.Next(256))).Concat([0, 0, 1, 16, 255]);
            var al = 0;
            foreach (var numberBase in bases)
            {
                var c = factory.Begin();
                c.Undefined = EFlags.OF | EFlags.AF | EFlags.CF;
                // Base 10 runs every AL once; AAD also reads AH.
                c.Fixed(Register.AX, (uint)(factory.Next(256) << 8 | (numberBase == 10 ? al++ : factory.Next(256))));
                var form = numberBase == 10 ? $"{code} (base 10)" : $"{code} (other base)";
                cases.Add(c.Build(form, Instruction.Create(code, numberBase)));
            }
        }

        return cases;
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
