using Vmm.CpuSemantics.Tests.Harness;

namespace Vmm.CpuSemantics.Tests.Cases;

/// <summary>
/// Cases for the two-operand ALU instructions (ADD, OR, ADC, SBB, AND, SUB, XOR, CMP, TEST): each operand pair runs
/// in one encoding picked at random among all of the instruction's forms (r/m,r; r,r/m; r/m,imm; r/m,imm8
/// sign-extended; accumulator,imm; the 0x82 alias; register or memory), so every form gets many cases.
/// </summary>
public static class BinaryAluCases
{
    /// <summary>
    /// Every edge pair plus <paramref name="randomCount"/> random pairs per width; ADC and SBB run each pair with CF
    /// clear and set, the others with a random CF.
    /// </summary>
    public static IEnumerable<TestCase> For(CaseFactory factory, string mnemonic, int randomCount, uint undefinedFlags = 0)
    {
        var carryMatters = mnemonic is "Adc" or "Sbb";
        foreach (var width in OperandWidth.All)
        {
            foreach (var (a, b) in factory.Pairs(width, randomCount))
            {
                foreach (var carry in carryMatters ? [false, true] : new[] { factory.NextBool() })
                {
                    yield return One(factory, mnemonic, width, a, b, carry, undefinedFlags);
                }
            }
        }
    }

    private static TestCase One(CaseFactory factory, string mnemonic, int width, uint a, uint b, bool carry, uint undefinedFlags)
    {
        var c = factory.Begin().Carry(carry);
        c.Undefined = undefinedFlags;
        var w = width.ToString();
        var forms = new List<string> { $"{mnemonic}_rm{w}_r{w}", $"{mnemonic}_rm{w}_imm{w}", AccumulatorForm(mnemonic, width) };
        // TEST has neither r,r/m nor imm8 forms. Its F6 /1 and F7 /1 aliases are left out: hardware runs them as TEST,
        // QEMU 7.2 raises #UD, and Intel's opcode map leaves them reserved, so neither answer is the rule.
        if (mnemonic != "Test")
        {
            forms.Add($"{mnemonic}_r{w}_rm{w}");
            // 0x82 is the documented (16/32-bit mode only) alias of 0x80.
            forms.Add(width == 8 ? $"{mnemonic}_rm8_imm8_82" : $"{mnemonic}_rm{w}_imm8");
        }

        var form = factory.Pick(forms);
        var code = Codes.Get(form);
        if (form.EndsWith("_imm8", StringComparison.Ordinal) && width != 8)
        {
            // The immediate is sign-extended from 8 bits: the second operand is whatever that makes of b.
            var imm = (sbyte)(byte)b;
            return c.Build(code, c.RegOrMem(width, a), Operand.Imm(imm));
        }

        if (form.Contains("_imm", StringComparison.Ordinal))
        {
            var destination = form == AccumulatorForm(mnemonic, width)
                ? c.Fixed(OperandWidth.Accumulator(width), a)
                : c.RegOrMem(width, a);
            return c.Build(code, destination, Operand.Imm(b));
        }

        if (form.StartsWith($"{mnemonic}_rm", StringComparison.Ordinal))
        {
            var destination = c.RegOrMem(width, a);
            return c.Build(code, destination, c.Reg(width, b));
        }

        var target = c.Reg(width, a);
        return c.Build(code, target, c.RegOrMem(width, b));
    }

    private static string AccumulatorForm(string mnemonic, int width) => width switch
    {
        8 => $"{mnemonic}_AL_imm8",
        16 => $"{mnemonic}_AX_imm16",
        _ => $"{mnemonic}_EAX_imm32",
    };
}
