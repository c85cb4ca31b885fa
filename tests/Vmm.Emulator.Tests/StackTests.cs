using Vmm.Accelerator.State;
using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

public sealed class StackTests
{
    [Fact]
    public void PushAndPopRegistersMemoryAndImmediates()
    {
        using var h = new CpuHarness().Execute("""
                mov sp, 0x7000
                mov ax, 0x1234
                push ax
                pop bx                      ; 0x1234
                push byte -2                ; sign-extended to 0xFFFE
                pop cx
                o32 push byte -2            ; sign-extended to 0xFFFFFFFE
                pop edx
                push word 0x5678
                push dword 0x9ABCDEF0
                pop esi                     ; 0x9ABCDEF0
                pop di                      ; 0x5678
                mov word [0x600], 0xBEEF
                push word [0x600]
                pop word [0x602]
                mov dword [0x610], 0x11223344
                push dword [0x610]
                pop dword [0x614]
                mov [0x620], sp             ; balanced
                hlt
            """);
        Assert.Equal(0x1234u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0xFFFEu, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0xFFFF_FFFEu, h.Reg(RegisterIndex.Edx));
        Assert.Equal(0x9ABC_DEF0u, h.Reg(RegisterIndex.Esi));
        Assert.Equal(0x5678u, h.Reg(RegisterIndex.Edi));
        Assert.Equal(0xBEEF, h.Read16(0x602));
        Assert.Equal(0x11223344u, h.Read32(0x614));
        Assert.Equal(0x7000, h.Read16(0x620));
    }

    [Fact]
    public void PushSpPushesTheValueBeforeThePush()
    {
        using var h = new CpuHarness().Execute("""
                mov sp, 0x7000
                push sp
                pop ax                      ; 0x7000
                mov esp, 0x7000
                push esp
                pop ebx                     ; 0x7000
                mov sp, 0x7000
                push word 0x4321
                pop sp                      ; SP = the popped value
                hlt
            """);
        Assert.Equal(0x7000u, h.Reg(RegisterIndex.Eax));
        Assert.Equal(0x7000u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0x4321u, h.Reg(RegisterIndex.Esp));
    }

    [Fact]
    public void PopToMemoryAddressedThroughEspUsesTheIncrementedEsp()
    {
        using var h = new CpuHarness().Execute("""
                mov esp, 0x7000
                push word 0xBBBB            ; [0x6FFE]
                push word 0xAAAA            ; [0x6FFC]
                pop word [esp]              ; pops 0xAAAA, ESP = 0x6FFE, writes [0x6FFE]
                pop ax                      ; 0xAAAA
                hlt
            """);
        Assert.Equal(0xAAAAu, h.Reg(RegisterIndex.Eax));
        Assert.Equal(0x7000u, h.Reg(RegisterIndex.Esp));
    }

    [Fact]
    public void PushaAndPopa()
    {
        using var h = new CpuHarness().Execute("""
                mov sp, 0x7000
                mov ax, 1
                mov cx, 2
                mov dx, 3
                mov bx, 4
                mov bp, 6
                mov si, 7
                mov di, 8
                pusha
                mov [0x600], sp             ; 0x6FF0
                mov ax, [0x6FF6]            ; the saved SP
                mov [0x602], ax
                mov ax, 0
                mov cx, 0
                mov dx, 0
                mov bx, 0
                mov bp, 0
                mov si, 0
                mov di, 0
                mov word [0x6FF6], 0x5555   ; the saved SP: skipped by POPA
                popa
                hlt
            """);
        Assert.Equal(0x6FF0, h.Read16(0x600));
        ushort[] expected = [8, 7, 6, 0x7000, 4, 3, 2, 1]; // DI SI BP SP BX DX CX AX, from the top
        for (int k = 0; k < expected.Length; k++)
        {
            Assert.Equal(expected[k], k == 3 ? h.Read16(0x602) : h.Read16(0x6FF0 + (uint)(2 * k)));
        }

        Assert.Equal(1u, h.Reg(RegisterIndex.Eax));
        Assert.Equal(2u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(3u, h.Reg(RegisterIndex.Edx));
        Assert.Equal(4u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0x7000u, h.Reg(RegisterIndex.Esp));
        Assert.Equal(6u, h.Reg(RegisterIndex.Ebp));
        Assert.Equal(7u, h.Reg(RegisterIndex.Esi));
        Assert.Equal(8u, h.Reg(RegisterIndex.Edi));
    }

    [Fact]
    public void PushadAndPopad()
    {
        using var h = new CpuHarness().Execute("""
                mov esp, 0x7000
                mov eax, 0x11111111
                mov ecx, 0x22222222
                mov edx, 0x33333333
                mov ebx, 0x44444444
                mov ebp, 0x66666666
                mov esi, 0x77777777
                mov edi, 0x88888888
                pushad
                mov [0x600], esp            ; 0x6FE0
                xor eax, eax
                xor ecx, ecx
                xor edx, edx
                xor ebx, ebx
                xor ebp, ebp
                xor esi, esi
                xor edi, edi
                popad
                hlt
            """);
        Assert.Equal(0x6FE0u, h.Read32(0x600));
        Assert.Equal(0x7000u, h.Read32(0x6FE0 + 12)); // the saved ESP
        Assert.Equal(0x88888888u, h.Read32(0x6FE0));
        Assert.Equal(0x11111111u, h.Read32(0x6FE0 + 28));
        Assert.Equal(0x11111111u, h.Reg(RegisterIndex.Eax));
        Assert.Equal(0x22222222u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0x33333333u, h.Reg(RegisterIndex.Edx));
        Assert.Equal(0x44444444u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0x7000u, h.Reg(RegisterIndex.Esp));
        Assert.Equal(0x66666666u, h.Reg(RegisterIndex.Ebp));
        Assert.Equal(0x77777777u, h.Reg(RegisterIndex.Esi));
        Assert.Equal(0x88888888u, h.Reg(RegisterIndex.Edi));
    }

    [Fact]
    public void PushAndPopSegmentRegisters()
    {
        using var h = new CpuHarness().Execute("""
                mov sp, 0x7000
                push word 0x1234
                pop es
                push word 0x2345
                pop fs
                push word 0x3456
                pop gs
                push word 0x0100
                pop ds
                mov byte [0x10], 0x77      ; DS:0x10 = 0x1010
                push cs
                pop ax                      ; 0
                push es
                pop bx                      ; 0x1234
                o32 push fs
                pop ecx                     ; zero-extended 0x2345
                push dword 0x00000050
                o32 pop ds                  ; pops 4 bytes
                mov [0x620], sp             ; (DS = 0x50: linear 0x1120)
                hlt
            """);
        Assert.Equal(0x1234, h.Cpu.Segments[SegmentIndex.Es].Selector);
        Assert.Equal(0x12340ul, h.Cpu.Segments[SegmentIndex.Es].Base);
        Assert.Equal(0x23450ul, h.Cpu.Segments[SegmentIndex.Fs].Base);
        Assert.Equal(0x34560ul, h.Cpu.Segments[SegmentIndex.Gs].Base);
        Assert.Equal(0x500ul, h.Cpu.Segments[SegmentIndex.Ds].Base);
        Assert.Equal(0x77, h.Memory[0x1010]);
        Assert.Equal(0u, h.Reg(RegisterIndex.Eax));
        Assert.Equal(0x1234u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0x2345u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0x7000, h.Read16(0x500 + 0x620));
    }

    [Fact]
    public void PopSsHoldsInterruptsOffForOneInstruction()
    {
        using var h = new CpuHarness().Load("""
                push ss
                pop ss
                mov sp, 0x7000
                hlt
            """);
        Assert.Equal(CpuStop.Stepped, h.Cpu.Run(singleStep: true));
        Assert.Equal(CpuStop.Stepped, h.Cpu.Run(singleStep: true));
        Assert.Equal(VcpuEvents.ShadowMovSs, h.Cpu.InterruptShadow);
        Assert.Equal(CpuHarness.LoadAddress + 2, h.Cpu.Eip);
        Assert.Equal(CpuStop.Stepped, h.Cpu.Run(singleStep: true));
        Assert.Equal(0, h.Cpu.InterruptShadow);
        Assert.Equal(CpuStop.Halted, h.Run());
    }

    [Fact]
    public void PopSsEndsTheBlockAndLoadsTheStack()
    {
        using var h = new CpuHarness().Execute("""
                push word 0x0200
                pop ss                      ; SS base 0x2000, SP unchanged (0x7C00)
                push word 0xABCD            ; linear 0x2000 + 0x7BFE
                hlt
            """);
        Assert.Equal(0x2000ul, h.Cpu.Segments[SegmentIndex.Ss].Base);
        Assert.Equal(0xABCD, h.Read16(0x2000 + 0x7BFE));
    }
}
