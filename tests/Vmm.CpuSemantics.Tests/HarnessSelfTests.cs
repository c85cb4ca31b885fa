using Iced.Intel;
using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;
using IcedCode = Iced.Intel.Code;

namespace Vmm.CpuSemantics.Tests;

/// <summary>
/// The harness checked against facts known without either machine: if these fail, no family test can be trusted.
/// Known results on QEMU, every initial field coming back untouched, exceptions and branches recorded, and a planted
/// difference reported in every case it touches.
/// </summary>
public sealed class HarnessSelfTests
{
    [Fact]
    public void AddOnePlusOneGivesTwoWithKnownFlags()
    {
        var oneAndOne = State(eax: 1, ebx: 1, flags: EFlags.Reserved1);
        var byteCarry = State(eax: 0x1234_56FF, ebx: 0xABCD_EF01, flags: EFlags.Reserved1 | EFlags.OF | EFlags.SF);
        var cases = new[]
        {
            CaseFactory.Case("ADD r/m32, r32", oneAndOne, Instruction.Create(IcedCode.Add_rm32_r32, Register.EAX, Register.EBX)),
            CaseFactory.Case("ADD r/m8, r8", byteCarry, Instruction.Create(IcedCode.Add_rm8_r8, Register.AL, Register.BL)),
        };

        var verdict = DifferentialHarness.Compare(cases, Accelerator.ForTests);

        var sum = Outcome(verdict.Qemu[0]);
        Assert.Equal(2u, sum[Gpr.Eax]);
        Assert.Equal(1u, sum[Gpr.Ebx]);
        // 2 = 0b10: one bit set, so PF = 0; no carry, no half carry, not zero, not negative.
        Assert.Equal(EFlags.Reserved1, sum.Eflags);
        Assert.Null(sum.Exception);
        // 0xFF + 0x01 in AL: 0 with carry out of bit 7 and of bit 3; the rest of EAX stays; OF and SF cleared.
        var wrapped = Outcome(verdict.Qemu[1]);
        Assert.Equal(0x1234_5600u, wrapped[Gpr.Eax]);
        Assert.Equal(EFlags.Reserved1 | EFlags.CF | EFlags.PF | EFlags.AF | EFlags.ZF, wrapped.Eflags);
        Assert.True(verdict.Passed, verdict.Report);
    }

    [Fact]
    public void NopReturnsEveryInitialFieldUnchanged()
    {
        var factory = new CaseFactory(seed: 1);
        var cases = Enumerable.Range(0, 300).Select(i =>
        {
            var state = factory.NextState();
            state.Data = factory.NextBytes(factory.Next(64));
            // Every flag a case may set, including IOPL, NT, AC and ID, must survive the harness unchanged.
            state.Eflags |= factory.NextUInt() & (EFlags.Iopl | EFlags.NT | EFlags.AC | EFlags.ID);
            return CaseFactory.Case("NOP", state, Instruction.Create(IcedCode.Nopw));
        }).ToList();

        var verdict = DifferentialHarness.Compare(cases, Accelerator.ForTests);

        for (var i = 0; i < cases.Count; i++)
        {
            var initial = cases[i].Initial;
            var final = Outcome(verdict.Qemu[i]);
            for (var r = Gpr.Eax; r <= Gpr.Edi; r++)
            {
                Assert.Equal(initial[r], final[r]);
            }

            Assert.Equal(initial.Eflags, final.Eflags);
            Assert.Null(final.Exception);
            Assert.False(final.BranchTaken);
            for (var b = 0; b < final.Data.Length; b++)
            {
                Assert.Equal(b < initial.Data.Length ? initial.Data[b] : TestImageBuilder.DataFill(b), final.Data[b]);
            }
        }

        Assert.True(verdict.Passed, verdict.Report);
    }

    [Fact]
    public void FaultsAreRecordedWithTheirVectorAndTheCasesAfterThemStillRun()
    {
        var divideByZero = State(eax: 0x1234, ebx: 0xFFFF_FF00, flags: EFlags.Reserved1);
        var invalidOpcode = State(eax: 5, ebx: 6, flags: EFlags.Reserved1 | EFlags.CF);
        var afterwards = State(eax: 40, ebx: 2, flags: EFlags.Reserved1);
        var cases = new[]
        {
            CaseFactory.Case("DIV r/m8", divideByZero, Instruction.Create(IcedCode.Div_rm8, Register.BL)),
            CaseFactory.Case("UD2", invalidOpcode, Instruction.Create(IcedCode.Ud2)),
            CaseFactory.Case("ADD r/m16, r16", afterwards, Instruction.Create(IcedCode.Add_rm16_r16, Register.AX, Register.BX)),
        };

        var verdict = DifferentialHarness.Compare(cases, Accelerator.ForTests);

        var divide = Outcome(verdict.Qemu[0]);
        Assert.Equal(0, divide.Exception);
        Assert.Equal(0x1234u, divide[Gpr.Eax]);
        // The fault pushed FLAGS, CS, IP on the 16-bit stack: SP is 6 lower, the upper half of ESP untouched.
        Assert.Equal(divideByZero[Gpr.Esp] - 6, divide[Gpr.Esp]);
        Assert.Equal(6, Outcome(verdict.Qemu[1]).Exception);
        var add = Outcome(verdict.Qemu[2]);
        Assert.Null(add.Exception);
        Assert.Equal(42u, add[Gpr.Eax]);
        Assert.True(verdict.Passed, verdict.Report);
    }

    [Fact]
    public void BranchesAreRecordedAsTakenOrNot()
    {
        var zero = State(eax: 0, ebx: 0, flags: EFlags.Reserved1 | EFlags.ZF);
        var nonZero = State(eax: 0, ebx: 0, flags: EFlags.Reserved1);
        var cases = new[]
        {
            CaseFactory.Branch("JZ rel8", zero, IcedCode.Je_rel8_16),
            CaseFactory.Branch("JZ rel8", nonZero, IcedCode.Je_rel8_16),
            CaseFactory.Branch("JZ rel16", zero, IcedCode.Je_rel16),
        };

        var verdict = DifferentialHarness.Compare(cases, Accelerator.ForTests);

        Assert.True(Outcome(verdict.Qemu[0]).BranchTaken);
        Assert.False(Outcome(verdict.Qemu[1]).BranchTaken);
        Assert.True(Outcome(verdict.Qemu[2]).BranchTaken);
        Assert.True(verdict.Passed, verdict.Report);
    }

    [Fact]
    public void PlantedDifferenceIsReportedInEveryCaseWithTheFieldsMarked()
    {
        // vmm runs SUB where QEMU runs ADD (same length, same stub layout): every case must come back as a mismatch
        // in EAX, with the ADD that QEMU ran shown in the report, and the report capped at its limit.
        var factory = new CaseFactory(seed: 2);
        var add = Instruction.Create(IcedCode.Add_rm32_r32, Register.EAX, Register.EBX);
        var sub = Code16.Encode(Instruction.Create(IcedCode.Sub_rm32_r32, Register.EAX, Register.EBX));
        var cases = Enumerable.Range(0, 40).Select(_ =>
        {
            var state = factory.NextState();
            state[Gpr.Ebx] |= 1;
            return CaseFactory.Case("ADD r/m32, r32", state, add);
        }).ToList();
        // A memory difference too: QEMU adds 1 to a data byte, vmm adds 2.
        var memory = factory.NextState();
        memory.Set(Register.BX, 5);
        cases.Add(CaseFactory.Case("ADD r/m8, imm8", memory, Instruction.Create(IcedCode.Add_rm8_imm8, new MemoryOperand(Register.BX), 1)));
        var addTwo = Code16.Encode(Instruction.Create(IcedCode.Add_rm8_imm8, new MemoryOperand(Register.BX), 2));

        var verdict = DifferentialHarness.Compare(cases, Accelerator.ForTests,
            alterForVmm: c => c with { Code = c.Form.StartsWith("ADD r/m32", StringComparison.Ordinal) ? sub : addTwo });

        Assert.Equal(cases.Count, verdict.Mismatches.Count);
        Assert.Empty(verdict.RunProblems);
        Assert.All(verdict.Mismatches.Take(40), m => Assert.Contains("EAX", m.Fields));
        Assert.Contains("data", verdict.Mismatches[^1].Fields);
        Assert.Contains($"{cases.Count} of {cases.Count} cases differ", verdict.Report, StringComparison.Ordinal);
        Assert.Contains($"The first {MismatchReport.ShownLimit} are shown", verdict.Report, StringComparison.Ordinal);
        Assert.Contains("66 01 D8", verdict.Report, StringComparison.Ordinal);
        Assert.Contains("add eax, ebx", verdict.Report, StringComparison.Ordinal);
        Assert.Contains("EAX        ", verdict.Report, StringComparison.Ordinal);
        Assert.Contains("<-- differs", verdict.Report, StringComparison.Ordinal);
        Assert.Equal(MismatchReport.ShownLimit, CountOccurrences(verdict.Report, "── image"));

        // The planted memory difference, reported alone, marks the one byte.
        var text = new System.Text.StringBuilder();
        MismatchReport.AppendCase(text, verdict.Mismatches[^1]);
        Assert.Contains("^^", text.ToString(), StringComparison.Ordinal);
        var expectedByte = (byte)(memory.Data[5] + 1);
        Assert.Equal(expectedByte, Outcome(verdict.Qemu[^1]).Data[5]);
    }

    [Fact]
    public void RunThatStopsEarlyIsLocatedAtTheCaseItStoppedIn()
    {
        // vmm gets HLT (IF = 0: vmm powers off) in case 3; QEMU runs NOPs throughout.
        var factory = new CaseFactory(seed: 3);
        var cases = Enumerable.Range(0, 8).Select(_ => CaseFactory.Case("NOP", factory.NextState(), Instruction.Create(IcedCode.Nopd))).ToList();
        var halt = Code16.Encode(Instruction.Create(IcedCode.Hlt), Instruction.Create(IcedCode.Nopw));
        var index = 0;

        var verdict = DifferentialHarness.Compare(cases, Accelerator.ForTests, alterForVmm: c => index++ == 3 ? c with { Code = halt } : c);

        var problem = Assert.Single(verdict.RunProblems);
        Assert.Contains("Results arrived for 3 of 8 cases; the next one is case 3", problem, StringComparison.Ordinal);
        Assert.Empty(verdict.Mismatches);
        Assert.Equal(3, verdict.Vmm.Count(o => o is not null));
        Assert.Equal(8, verdict.Qemu.Count(o => o is not null));
    }

    private static CaseState State(uint eax, uint ebx, uint flags)
    {
        var state = new CaseState { Eflags = flags, Data = new byte[16] };
        state[Gpr.Eax] = eax;
        state[Gpr.Ebx] = ebx;
        state[Gpr.Esp] = MemoryMap.DefaultCaseStackPointer;
        return state;
    }

    private static CaseOutcome Outcome(CaseOutcome? outcome) =>
        outcome ?? throw new Xunit.Sdk.XunitException("QEMU produced no result for this case (see the run problems)");

    private static int CountOccurrences(string text, string part)
    {
        var count = 0;
        for (var i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + 1, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}
