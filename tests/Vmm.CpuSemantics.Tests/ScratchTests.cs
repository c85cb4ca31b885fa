using Iced.Intel;
using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;
using IcedCode = Iced.Intel.Code;
namespace Vmm.CpuSemantics.Tests;
public sealed class ScratchTests
{
    [Fact]
    public void Show()
    {
        var factory = new CaseFactory(seed: 2);
        var cases = Enumerable.Range(0, 3).Select(_ => { var s = factory.NextState(); s.Set(Register.BX, 5); return CaseFactory.Case("ADD r/m8, imm8", s, Instruction.Create(IcedCode.Add_rm8_imm8, new MemoryOperand(Register.BX), 1)); }).ToList();
        var addTwo = Code16.Encode(Instruction.Create(IcedCode.Add_rm8_imm8, new MemoryOperand(Register.BX), 2));
        var verdict = DifferentialHarness.Compare(cases, Accelerator.ForTests, alterForVmm: c => c with { Code = addTwo });
        Assert.Fail(verdict.Report);
    }
}
