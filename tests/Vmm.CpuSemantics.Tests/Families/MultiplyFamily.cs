using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>
/// MUL and one-operand IMUL (AL/AX/EAX times r/m into AX, DX:AX, EDX:EAX), and IMUL r, r/m and IMUL r, r/m, imm
/// (imm8 sign-extended and full-size) at 16 and 32 bits: products, CF = OF, and the flags the SDM leaves undefined.
/// </summary>
public sealed class MultiplyFamily
{
    private const uint Undefined = EFlags.SF | EFlags.ZF | EFlags.AF | EFlags.PF;

    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0x3017);
        var cases = new List<TestCase>();
        foreach (var width in OperandWidth.All)
        {
            foreach (var (a, b) in factory.Pairs(width, randomCount: 40))
            {
                foreach (var mnemonic in new[] { "Mul", "Imul" })
                {
                    var c = factory.Begin();
                    c.Undefined = Undefined;
                    c.Fixed(OperandWidth.Accumulator(width), a);
                    if (width != 8)
                    {
                        // The high half of the product goes to DX/EDX: its old (random) value must vanish.
                        c.Claim(OperandWidth.Reg(width, 2));
                    }

                    cases.Add(c.Build(Codes.Get($"{mnemonic}_rm{width}"), c.RegOrMem(width, b)));
                }

                if (width == 8)
                {
                    continue;
                }

                var two = factory.Begin();
                two.Undefined = Undefined;
                var destination = two.Reg(width, a);
                cases.Add(two.Build(Codes.Get($"Imul_r{width}_rm{width}"), destination, two.RegOrMem(width, b)));

                var three = factory.Begin();
                three.Undefined = Undefined;
                // The destination only receives the product: its old value is random.
                var target = three.Reg(width, factory.NextUInt());
                var source = three.RegOrMem(width, a);
                cases.Add(factory.NextBool()
                    ? three.Build(Codes.Get($"Imul_r{width}_rm{width}_imm{width}"), target, source, Operand.Imm(b))
                    : three.Build(Codes.Get($"Imul_r{width}_rm{width}_imm8"), target, source, Operand.Imm((sbyte)(byte)b)));
            }
        }

        return cases;
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
