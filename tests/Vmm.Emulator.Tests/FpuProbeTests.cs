using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

public sealed class FpuProbeTests
{
    /// <summary>The classic probe: FNINIT, then FNSTSW and FNSTCW into words that start non-zero.</summary>
    [Fact]
    public void ProbeSequenceFindsAnFpu()
    {
        using var h = new CpuHarness();
        h.Cpu.FpuControlWord = 0x1234;
        h.Cpu.FpuStatusWord = 0x3801;
        h.Cpu.FpuAbridgedTagWord = 0xFF;
        h.Execute("""
            mov word [0x500], 0x5A5A
            mov word [0x502], 0x5A5A
            fninit
            fnstsw [0x500]
            fnstcw [0x502]
            mov ax, 0xFFFF
            fnstsw ax
            hlt
            """);
        Assert.Equal(0, h.Read16(0x500));
        Assert.Equal(0x037F, h.Read16(0x502));
        Assert.Equal(0u, h.Reg(RegisterIndex.Eax) & 0xFFFF);
        Assert.Equal(0, h.Cpu.FpuAbridgedTagWord);
    }

    [Fact]
    public void ControlWordRoundTripsThroughFldcw()
    {
        using var h = new CpuHarness().Execute("""
            fninit
            mov word [0x500], 0x0272
            fldcw [0x500]
            fnstcw [0x502]
            hlt
            """);
        Assert.Equal(0x0272, h.Read16(0x502));
        Assert.Equal(0x0272, h.Cpu.FpuControlWord);
    }

    [Fact]
    public void FnclexClearsExceptionFlagsAndKeepsTheRest()
    {
        using var h = new CpuHarness();
        h.Cpu.FpuStatusWord = 0xB8FF;   // busy, TOP = 7, C-bits, ES, SF, every exception flag
        h.Execute("fnclex\nhlt");
        Assert.Equal(0x3800, h.Cpu.FpuStatusWord);
    }

    [Fact]
    public void WaitingFormsBehaveLikeTheNoWaitForms()
    {
        using var h = new CpuHarness();
        h.Cpu.FpuStatusWord = 0x00FF;
        h.Execute("""
            fclex
            fstsw [0x500]
            finit
            fstcw [0x502]
            mov ax, 0xFFFF
            fstsw ax
            wait
            hlt
            """);
        Assert.Equal(0, h.Read16(0x500));
        Assert.Equal(0x037F, h.Read16(0x502));
        Assert.Equal(0u, h.Reg(RegisterIndex.Eax) & 0xFFFF);
    }

    [Theory]
    [InlineData(0x4u, "fninit")]        // EM
    [InlineData(0x8u, "fninit")]        // TS
    [InlineData(0x4u, "fnstsw ax")]
    [InlineData(0x8u, "fnstcw [0x500]")]
    [InlineData(0x8u, "fldcw [0x500]")]
    [InlineData(0x8u, "fnclex")]
    [InlineData(0xAu, "wait")]          // TS and MP
    public void EmulationOrTaskSwitchedIsDeviceNotAvailable(uint cr0Bits, string instruction)
    {
        using var h = new CpuHarness().Execute($"""
            {GuestTables.InstallIvtHandler(7)}
            mov eax, cr0
            or eax, {cr0Bits}
            mov cr0, eax
            mov bx, fault
            fault:
            {instruction}
            mov di, 0xBAD
            hlt
            {GuestTables.IvtHandler(7)}
            """);
        Assert.Equal(7u, h.Reg(RegisterIndex.Edi) & 0xFFFF);
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
    }

    [Theory]
    [InlineData(0x8u)]  // TS without MP
    [InlineData(0x4u)]  // EM
    public void WaitIgnoresTaskSwitchedWithoutMonitorCoprocessor(uint cr0Bits)
    {
        using var h = new CpuHarness().Execute($"""
            mov eax, cr0
            or eax, {cr0Bits}
            mov cr0, eax
            wait
            mov di, 0x600D
            hlt
            """);
        Assert.Equal(0x600Du, h.Reg(RegisterIndex.Edi) & 0xFFFF);
    }

    [Theory]
    [InlineData("fld1")]
    [InlineData("fadd st0, st1")]
    [InlineData("emms")]
    public void OtherFloatingPointInstructionsAreUndefined(string instruction)
    {
        using var h = new CpuHarness().Execute($"""
            {GuestTables.InstallIvtHandler(6)}
            mov bx, fault
            fault:
            {instruction}
            hlt
            {GuestTables.IvtHandler(6)}
            """);
        Assert.Equal(6u, h.Reg(RegisterIndex.Edi) & 0xFFFF);
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
    }
}
