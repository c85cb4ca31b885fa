using Iced.Intel;
using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>
/// The 16 conditions: SETcc and Jcc (rel8 and rel16) from random flags, and SETcc/Jcc right after a flag-setting
/// instruction of each family (so a CPU that computes flags lazily is checked where it matters); LOOP, LOOPE, LOOPNE,
/// JCXZ and JECXZ with CX or ECX counting. CMOVcc is a P6 instruction: outside the software CPU's 80386/486 scope
/// (it raises #UD there, as on a 486), so it is not compared.
/// </summary>
public sealed class ConditionFamily
{
    private static readonly string[] Conditions = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];

    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0xCC);
        var cases = new List<TestCase>();
        foreach (var cc in Conditions)
        {
            for (var i = 0; i < 24; i++)
            {
                var c = factory.Begin();
                cases.Add(c.Build(Codes.Get($"Set{cc}_rm8"), c.RegOrMem(8, factory.NextValue(8))));
            }

            foreach (var jump in new[] { $"J{cc}_rel8_16", $"J{cc}_rel16" })
            {
                for (var i = 0; i < 12; i++)
                {
                    cases.Add(factory.Begin().Branch(jump, Codes.Get(jump)));
                }
            }
        }

        for (var i = 0; i < 640; i++)
        {
            cases.Add(AfterFlagSetter(factory));
        }

        foreach (var loop in new[] { "Loop", "Loope", "Loopne" })
        {
            foreach (var counter in new[] { "CX", "ECX" })
            {
                foreach (var count in new uint[] { 0, 1, 2, 0x10000, 0x10001, 0xFFFF, 0xFFFF_FFFF, 0x8000_0000 })
                {
                    var c = factory.Begin();
                    c.Fixed(Register.ECX, count);
                    var code = $"{loop}_rel8_16_{counter}";
                    cases.Add(c.Branch(code, Codes.Get(code)));
                }
            }
        }

        foreach (var code in new[] { "Jcxz_rel8_16", "Jecxz_rel8_16" })
        {
            foreach (var count in new uint[] { 0, 1, 0x10000, 0xFFFF_0000, 0xFFFF })
            {
                var c = factory.Begin();
                c.Fixed(Register.ECX, count);
                cases.Add(c.Branch(code, Codes.Get(code)));
            }
        }

        return cases;
    }

    /// <summary>A flag-setting instruction on random or edge operands, then SETcc or Jcc on one of the 16 conditions.</summary>
    private static TestCase AfterFlagSetter(CaseFactory factory)
    {
        var c = factory.Begin();
        var width = factory.Pick(OperandWidth.All);
        var a = factory.Next(3) == 0 ? factory.Pick(EdgeValues.For(width)) : factory.Interesting(width);
        var b = factory.Next(3) == 0 ? factory.Pick(EdgeValues.For(width)) : factory.Interesting(width);
        var w = width.ToString();
        Instruction setter;
        switch (factory.Next(12))
        {
            case 0: setter = Operand.Create(Codes.Get($"Cmp_rm{w}_r{w}"), c.Reg(width, a), c.Reg(width, b)); break;
            case 1: setter = Operand.Create(Codes.Get($"Sub_rm{w}_r{w}"), c.Reg(width, a), c.Reg(width, b)); break;
            case 2: setter = Operand.Create(Codes.Get($"Add_rm{w}_r{w}"), c.Reg(width, a), c.Reg(width, b)); break;
            case 3: setter = Operand.Create(Codes.Get($"Sbb_rm{w}_r{w}"), c.Reg(width, a), c.Reg(width, b)); break;
            case 4: setter = Operand.Create(Codes.Get($"Test_rm{w}_r{w}"), c.Reg(width, a), c.Reg(width, b)); break;
            case 5: setter = Operand.Create(Codes.Get($"Xor_rm{w}_r{w}"), c.Reg(width, a), c.Reg(width, b)); break;
            case 6: setter = Operand.Create(Codes.Get($"Inc_rm{w}"), c.Reg(width, a)); break;
            case 7: setter = Operand.Create(Codes.Get($"Dec_rm{w}"), c.Reg(width, a)); break;
            case 8: setter = Operand.Create(Codes.Get($"Neg_rm{w}"), c.Reg(width, a)); break;
            case 9: setter = Operand.Create(Codes.Get($"Shl_rm{w}_imm8"), c.Reg(width, a), Operand.Imm(1 + factory.Next(width))); break;
            case 10: setter = Operand.Create(Codes.Get($"Sar_rm{w}_imm8"), c.Reg(width, a), Operand.Imm(1 + factory.Next(width))); break;
            default:
                if (width == 8)
                {
                    c.Fixed(Register.AL, a);
                    setter = Operand.Create(Codes.Get("Mul_rm8"), c.Reg(8, b));
                }
                else
                {
                    setter = Operand.Create(Codes.Get($"Imul_r{w}_rm{w}"), c.Reg(width, a), c.Reg(width, b));
                }

                break;
        }

        var cc = factory.Pick(Conditions);
        var undefined = UndefinedAfter(setter);
        // Said in the form, so that a report shows at a glance why hardware may disagree in the branch or the byte.
        var note = (FlagsRead(cc) & undefined) != 0 ? " (reads undefined flags)" : "";
        if (factory.NextBool())
        {
            var jump = Codes.Get($"J{cc}_rel8_16");
            return c.Branch($"{setter.Mnemonic} ; J{cc}{note}", jump, setter) with { UndefinedFlags = undefined };
        }

        var destination = c.Reg(8, factory.NextValue(8));
        return c.Build($"{setter.Mnemonic} ; SET{cc}{note}", setter, Operand.Create(Codes.Get($"Set{cc}_rm8"), destination)) with
        {
            UndefinedFlags = undefined,
        };
    }

    /// <summary>The flags condition <paramref name="cc"/> tests.</summary>
    private static uint FlagsRead(string cc) => cc switch
    {
        "o" or "no" => EFlags.OF,
        "b" or "ae" => EFlags.CF,
        "e" or "ne" => EFlags.ZF,
        "be" or "a" => EFlags.CF | EFlags.ZF,
        "s" or "ns" => EFlags.SF,
        "p" or "np" => EFlags.PF,
        "l" or "ge" => EFlags.SF | EFlags.OF,
        _ => EFlags.ZF | EFlags.SF | EFlags.OF,
    };

    private static uint UndefinedAfter(Instruction setter) => setter.Mnemonic switch
    {
        Mnemonic.Test or Mnemonic.Xor => EFlags.AF,
        // A shift count may reach the width: then SHL's CF is undefined as well.
        Mnemonic.Shl => EFlags.AF | EFlags.OF | EFlags.CF,
        Mnemonic.Sar => EFlags.AF | EFlags.OF,
        Mnemonic.Mul or Mnemonic.Imul => EFlags.SF | EFlags.ZF | EFlags.AF | EFlags.PF,
        _ => 0,
    };

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
