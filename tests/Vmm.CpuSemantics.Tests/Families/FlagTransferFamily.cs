using Iced.Intel;
using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>
/// Moving flags to and from registers: LAHF, SAHF, PUSHF/PUSHFD (read back with POP), POPF/POPFD of random values
/// (read back with PUSHF: which bits real mode lets POPF change: IOPL, NT, AC, ID yes; VM, RF, VIF, VIP and the
/// reserved bits no), and CLC, STC, CMC, CLD, STD. TF and IF are never set: a trap or an interrupt would end the case.
/// </summary>
public sealed class FlagTransferFamily
{
    /// <summary>Bits POPF is given at random: everything but TF and IF.</summary>
    private const uint PoppedBits = ~(EFlags.TF | EFlags.IF);

    /// <summary>Bits beyond the arithmetic ones and DF that a case may start with (the harness's POPFD sets them).</summary>
    private const uint SystemBits = EFlags.Iopl | EFlags.NT | EFlags.AC | EFlags.ID;

    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0xF1A6);
        var cases = new List<TestCase>();
        for (var i = 0; i < 120; i++)
        {
            var c = factory.Begin();
            c.Claim(Register.AH);
            cases.Add(c.Build("LAHF", Instruction.Create(Code.Lahf)));
        }

        for (var i = 0; i < 256; i++)
        {
            var c = factory.Begin();
            c.Fixed(Register.AH, (uint)i);
            cases.Add(c.Build("SAHF", Instruction.Create(Code.Sahf)));
        }

        foreach (var width in new[] { 16, 32 })
        {
            var push = Codes.Get(width == 16 ? "Pushfw" : "Pushfd");
            var pop = Codes.Get(width == 16 ? "Popfw" : "Popfd");
            for (var i = 0; i < 120; i++)
            {
                // PUSHF of whatever the case starts with, system bits included.
                var c = factory.Begin();
                c.State.Eflags |= factory.NextUInt() & SystemBits;
                var target = c.Claim(OperandWidth.Reg(width, factory.Pick(new[] { 0, 1, 2, 3, 5, 6, 7 })));
                cases.Add(c.Build($"{push} ; POP", Instruction.Create(push), Operand.Create(Codes.Get($"Pop_r{width}"), target)));
            }

            for (var i = 0; i < 240; i++)
            {
                // POPF of a random value, then PUSHF to see what it kept.
                var c = factory.Begin();
                var source = c.Reg(width, factory.NextUInt() & PoppedBits);
                var readBack = c.Reg(width, 0);
                cases.Add(c.Build(
                    $"PUSH ; {pop} ; {push} ; POP",
                    Operand.Create(Codes.Get($"Push_r{width}"), source),
                    Instruction.Create(pop),
                    Instruction.Create(push),
                    Operand.Create(Codes.Get($"Pop_r{width}"), readBack)));
            }
        }

        foreach (var code in new[] { Code.Clc, Code.Stc, Code.Cmc, Code.Cld, Code.Std })
        {
            for (var i = 0; i < 24; i++)
            {
                cases.Add(factory.Begin().Build(code.ToString(), Instruction.Create(code)));
            }
        }

        return cases;
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
