using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

public sealed class ArithmeticTests
{
    [Fact]
    public void AddSetsCarryZeroAndAuxiliaryFlags()
    {
        using var h = new CpuHarness().Execute("mov al, 0xFF\nadd al, 1\nhlt");
        Assert.Equal(0u, h.Reg(RegisterIndex.Eax) & 0xFF);
        Assert.Equal(LazyFlags.CF | LazyFlags.ZF | LazyFlags.AF | LazyFlags.PF, h.Flags & LazyFlags.ArithmeticMask);
    }

    [Fact]
    public void SubtractWithBorrowChainsAcross32Bits()
    {
        using var h = new CpuHarness().Execute("mov eax, 0\nmov edx, 1\nsub eax, 1\nsbb edx, 0\nhlt");
        Assert.Equal(0xFFFF_FFFFu, h.Reg(RegisterIndex.Eax));
        Assert.Equal(0u, h.Reg(RegisterIndex.Edx));
    }

    [Fact]
    public void MemoryOperandsUseSegmentAndSixteenBitAddressing()
    {
        using var h = new CpuHarness().Execute("""
            mov ax, 0x1000
            mov ds, ax
            mov bx, 0xFFFE
            mov si, 4
            mov word [bx+si], 0x1234   ; (0xFFFE + 4) wraps to 0x0002 in 16-bit addressing
            add word [bx+si], 0x0101
            hlt
            """);
        Assert.Equal(0x1335, h.Read16(0x10002));
    }

    [Fact]
    public void ExchangeAddAndCompareExchange()
    {
        using var h = new CpuHarness().Execute("""
            mov word [0x500], 7
            mov ax, 3
            xadd [0x500], ax        ; [0x500] = 10, ax = 7
            mov cx, 99
            cmpxchg [0x500], cx     ; ax (7) != 10: ax = 10, ZF = 0
            mov bx, ax
            cmpxchg [0x500], cx     ; ax (10) == 10: [0x500] = 99, ZF = 1
            hlt
            """);
        Assert.Equal(10u, h.Reg(RegisterIndex.Ebx) & 0xFFFF);
        Assert.Equal(99, h.Read16(0x500));
        Assert.NotEqual(0u, h.Flags & LazyFlags.ZF);
    }
}
