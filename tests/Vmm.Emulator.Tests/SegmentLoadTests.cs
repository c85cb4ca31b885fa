using Vmm.Accelerator.State;
using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

public sealed class SegmentLoadTests
{
    [Fact]
    public void RealModeLoadSetsSelectorAndBaseAndAddressesThroughIt()
    {
        using var h = new CpuHarness().Execute("""
            mov ax, 0x1234
            mov ds, ax
            mov word [0x10], 0xA55A
            mov word [0x20], 0x2000
            mov bx, 0x20
            mov es, [bx]            ; ES from memory at DS:0x20 = 0x12360
            hlt
            """);
        Assert.Equal(0x2000, h.Cpu.Segments[SegmentIndex.Es].Selector);
        Assert.Equal(0x20000ul, h.Cpu.Segments[SegmentIndex.Es].Base);
        Assert.Equal(0x1234, h.Cpu.Segments[SegmentIndex.Ds].Selector);
        Assert.Equal(0x12340ul, h.Cpu.Segments[SegmentIndex.Ds].Base);
        Assert.Equal(0xA55A, h.Read16(0x12350));
        Assert.Equal(0xFFFFu, h.Cpu.Segments[SegmentIndex.Ds].Limit);
    }

    [Fact]
    public void StoreToRegisterZeroExtendsOnlyForThirtyTwoBits()
    {
        using var h = new CpuHarness().Execute("""
            mov ax, 0x4321
            mov fs, ax
            mov ebx, 0xFFFFFFFF
            mov ecx, 0xFFFFFFFF
            mov bx, fs              ; 16 bits: the high half stays
            mov ecx, fs             ; 32 bits: zero-extended
            mov dword [0x500], 0xFFFFFFFF
            o32 mov [0x500], fs     ; memory: always 16 bits
            hlt
            """);
        Assert.Equal(0xFFFF_4321u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0x4321u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0xFFFF_4321u, h.Read32(0x500));
    }

    [Fact]
    public void MovToCsIsUndefined()
    {
        using var h = new CpuHarness().Execute("""
            mov word [6*4], handler
            mov word [6*4+2], 0
            mov bx, fault
            fault:
            db 0x8E, 0xC8           ; mov cs, ax
            hlt
            handler:
            mov bp, sp
            mov cx, [bp]
            hlt
            """);
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
    }

    [Theory]
    [InlineData("lds", SegmentIndex.Ds)]
    [InlineData("les", SegmentIndex.Es)]
    [InlineData("lfs", SegmentIndex.Fs)]
    [InlineData("lgs", SegmentIndex.Gs)]
    [InlineData("lss", SegmentIndex.Ss)]
    public void FarPointerLoadsSixteenSixteen(string mnemonic, int segment)
    {
        using var h = new CpuHarness().Execute($"""
            mov ebx, 0xFFFFFFFF
            {mnemonic} bx, [pointer]
            hlt
            pointer: dw 0x1234, 0x5678
            """);
        Assert.Equal(0xFFFF_1234u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0x5678, h.Cpu.Segments[segment].Selector);
        Assert.Equal(0x56780ul, h.Cpu.Segments[segment].Base);
    }

    [Fact]
    public void FarPointerLoadsSixteenThirtyTwo()
    {
        using var h = new CpuHarness().Execute("""
            o32 les edi, [pointer]
            hlt
            pointer: dd 0x89ABCDEF
                     dw 0x0100
            """);
        Assert.Equal(0x89AB_CDEFu, h.Reg(RegisterIndex.Edi));
        Assert.Equal(0x0100, h.Cpu.Segments[SegmentIndex.Es].Selector);
    }

    [Fact]
    public void MovSsHoldsInterruptsOffForOneInstructionButLssDoesNot()
    {
        using var h = new CpuHarness().Load("""
            mov ax, 0
            mov ss, ax
            lss sp, [pointer]
            hlt
            pointer: dw 0x7000, 0
            """);
        Assert.Equal(CpuStop.Stepped, h.Cpu.Run(singleStep: true));
        Assert.Equal(CpuStop.Stepped, h.Cpu.Run(singleStep: true));
        Assert.Equal(VcpuEvents.ShadowMovSs, h.Cpu.InterruptShadow);
        Assert.Equal(CpuStop.Stepped, h.Cpu.Run(singleStep: true));
        Assert.Equal(0, h.Cpu.InterruptShadow);
        Assert.Equal(0x7000u, h.Reg(RegisterIndex.Esp));
    }

    [Fact]
    public void ProtectedModeLoadReadsTheDescriptorAndMarksItAccessed()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            {{GuestTables.EnterProtectedMode}}
            mov ax, {{GuestTables.OddBase}}
            mov gs, ax
            mov word [gs:0x10], 0x7777
            mov al, [gdt + {{GuestTables.OddBase}} + 5]
            hlt
            {{GuestTables.Gdt}}
            """);
        Segment gs = h.Cpu.Segments[SegmentIndex.Gs];
        Assert.Equal(0x12345ul, gs.Base);
        Assert.Equal(0xFFFu, gs.Limit);
        Assert.Equal(0x7777, h.Read16(0x12355));
        Assert.Equal(0x93u, h.Reg(RegisterIndex.Eax) & 0xFF);
    }

    [Fact]
    public void ProtectedModeNullSelectorMakesTheSegmentUnusable()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            lidt [idtr]
            {{GuestTables.EnterProtectedMode}}
            xor ax, ax
            mov es, ax              ; a null selector loads, but any use faults
            mov bx, fault
            fault:
            mov al, [es:0]
            hlt
            {{GuestTables.Gdt}}
            {{GuestTables.Idt}}
            """);
        Assert.True(h.Cpu.Segments[SegmentIndex.Es].Unusable);
        Assert.Equal(13u, h.Reg(RegisterIndex.Edi));
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
        Assert.Equal(0u, h.Reg(RegisterIndex.Edx) & 0xFFFF);
    }

    [Theory]
    [InlineData(GuestTables.ExecuteOnly, 13)]   // not readable: #GP(selector)
    [InlineData(GuestTables.NotPresent, 11)]    // #NP(selector)
    [InlineData(0x1004, 13)]                    // the LDT, which is null: #GP(selector)
    public void ProtectedModeLoadOfAnUnsuitableDescriptorFaults(ushort selector, int vector)
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            lidt [idtr]
            {{GuestTables.EnterProtectedMode}}
            mov ax, {{selector}}
            mov bx, fault
            fault:
            mov ds, ax
            hlt
            {{GuestTables.Gdt}}
            {{GuestTables.Idt}}
            """);
        Assert.Equal((uint)vector, h.Reg(RegisterIndex.Edi));
        Assert.Equal(selector & ~3u, h.Reg(RegisterIndex.Edx) & 0xFFFF);
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
        Assert.Equal(0u, h.Cpu.Segments[SegmentIndex.Ds].Selector);
    }

    [Fact]
    public void ProtectedModeStackLoadNeedsAWritableSegmentAtCpl()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            lidt [idtr]
            {{GuestTables.EnterProtectedMode}}
            mov ax, {{GuestTables.ReadOnlyDpl3}}
            mov bx, fault
            fault:
            mov ss, ax
            hlt
            {{GuestTables.Gdt}}
            {{GuestTables.Idt}}
            """);
        Assert.Equal(13u, h.Reg(RegisterIndex.Edi));
        Assert.Equal((uint)GuestTables.ReadOnlyDpl3, h.Reg(RegisterIndex.Edx) & 0xFFFF);
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
    }
}
