using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

/// <summary>
/// Nasm text shared by the mode and system tests: a GDT with the descriptors they need, a pointer to it, and the
/// steps into protected mode. Placed after a snippet's last instruction.
/// </summary>
internal static class GuestTables
{
    public const ushort Code16 = 0x08;
    public const ushort Data16 = 0x10;
    public const ushort Flat = 0x18;
    public const ushort Code32 = 0x20;
    public const ushort OddBase = 0x28;
    public const ushort Tss32 = 0x30;
    public const ushort Ldt = 0x38;
    public const ushort ReadOnlyDpl3 = 0x40;
    public const ushort ExecuteOnly = 0x48;
    public const ushort NotPresent = 0x50;

    public const string Gdt = """

        align 8
        gdt:
            dq 0
            dq 0x00009A000000FFFF   ; 0x08 16-bit code, base 0, 64 KiB
            dq 0x000092000000FFFF   ; 0x10 16-bit data, base 0, 64 KiB
            dq 0x00CF92000000FFFF   ; 0x18 flat data, 4 GiB, big
            dq 0x00CF9A000000FFFF   ; 0x20 flat 32-bit code
            dq 0x0000920123450FFF   ; 0x28 data, base 0x12345, limit 0xFFF
            dq 0x0000890006000067   ; 0x30 available 32-bit TSS at 0x600
            dq 0x0000820007000017   ; 0x38 LDT at 0x700, three entries
            dq 0x0000F0000000FFFF   ; 0x40 read-only data, DPL 3
            dq 0x000098000000FFFF   ; 0x48 execute-only code
            dq 0x000012000000FFFF   ; 0x50 data, not present
        gdt_end:
        gdtr:
            dw gdt_end - gdt - 1
            dd gdt

        """;

    /// <summary>LGDT and CR0.PE: protected mode, still running on the real-mode CS cache until a far jump.</summary>
    public const string EnterProtectedMode = """
        lgdt [gdtr]
        mov eax, cr0
        or al, 1
        mov cr0, eax

        """;

    /// <summary>
    /// An IDT whose #UD, #NP and #GP gates (16-bit interrupt gates to selector 8) lead to handlers that record and
    /// halt: DI = the vector, CX = the IP pushed, DX = the error code (#NP, #GP).
    /// </summary>
    public const string Idt = """

        align 8
        idt:
            times 6 dq 0
            dw ud_handler, 0x08, 0x8600, 0      ; 6: #UD
            times 4 dq 0
            dw np_handler, 0x08, 0x8600, 0      ; 11: #NP
            dq 0
            dw gp_handler, 0x08, 0x8600, 0      ; 13: #GP
        idt_end:
        idtr:
            dw idt_end - idt - 1
            dd idt
        ud_handler:
            mov bp, sp
            mov cx, [bp]
            mov di, 6
            hlt
        np_handler:
            mov di, 11
            mov bp, sp
            mov dx, [bp]
            mov cx, [bp+2]
            hlt
        gp_handler:
            mov di, 13
            mov bp, sp
            mov dx, [bp]
            mov cx, [bp+2]
            hlt

        """;

    /// <summary>Real mode: points IVT entry <paramref name="vector"/> at <see cref="IvtHandler"/>'s code (DS must be 0).</summary>
    public static string InstallIvtHandler(int vector) => $"""
        mov word [{vector}*4], ivt_handler_{vector}
        mov word [{vector}*4+2], 0

        """;

    /// <summary>A real-mode handler that records and halts: DI = the vector, CX = the IP pushed.</summary>
    public static string IvtHandler(int vector) => $"""

        ivt_handler_{vector}:
            mov bp, sp
            mov cx, [bp]
            mov di, {vector}
            hlt

        """;
}

public sealed class ModeTests
{
    /// <summary>Needs far JMP (ControlFlow).</summary>
    [Fact]
    public void SixteenBitProtectedModeIsEnteredWithGdtAndFarJump()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            {{GuestTables.EnterProtectedMode}}
            jmp {{GuestTables.Code16}}:protected
            protected:
            mov ax, {{GuestTables.OddBase}}
            mov ds, ax
            mov word [0x10], 0xBEEF
            hlt
            {{GuestTables.Gdt}}
            """);
        Assert.True(h.Cpu.ProtectedMode);
        Assert.Equal(GuestTables.Code16, h.Cpu.Segments[SegmentIndex.Cs].Selector);
        Assert.False(h.Cpu.Segments[SegmentIndex.Cs].DefaultBig);
        Assert.Equal(0xBEEF, h.Read16(0x12345 + 0x10));
    }

    /// <summary>Needs far JMP (ControlFlow).</summary>
    [Fact]
    public void ThirtyTwoBitProtectedModeReachesMemoryAboveOneMegabyte()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            {{GuestTables.EnterProtectedMode}}
            jmp dword {{GuestTables.Code32}}:protected32
            bits 32
            protected32:
            mov ax, {{GuestTables.Flat}}
            mov ds, ax
            mov es, ax
            mov ss, ax
            mov esp, 0x9000
            mov dword [0x100000], 0x12345678
            mov ebx, [0x100000]
            hlt
            {{GuestTables.Gdt}}
            """);
        Assert.True(h.Cpu.Segments[SegmentIndex.Cs].DefaultBig);
        Assert.Equal(0x12345678u, h.Read32(0x100000));
        Assert.Equal(0x12345678u, h.Reg(RegisterIndex.Ebx));
    }

    [Fact]
    public void UnrealModeKeepsTheFlatLimitAfterReturningToRealMode()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            {{GuestTables.EnterProtectedMode}}
            mov bx, {{GuestTables.Flat}}
            mov ds, bx
            and al, 0xFE
            mov cr0, eax            ; back to real mode: DS keeps its 4 GiB limit
            xor bx, bx
            mov ds, bx              ; a real-mode load changes the base only
            mov esi, 0x100000
            mov dword [esi], 0xCAFEF00D
            mov edi, [esi]
            hlt
            {{GuestTables.Gdt}}
            """);
        Assert.False(h.Cpu.ProtectedMode);
        Assert.Equal(0u, h.Cpu.Segments[SegmentIndex.Ds].Selector);
        Assert.Equal(0ul, h.Cpu.Segments[SegmentIndex.Ds].Base);
        Assert.Equal(0xFFFF_FFFFu, h.Cpu.Segments[SegmentIndex.Ds].Limit);
        Assert.Equal(0xCAFEF00Du, h.Read32(0x100000));
        Assert.Equal(0xCAFEF00Du, h.Reg(RegisterIndex.Edi));
    }

    [Fact]
    public void RealModeAccessBeyondSixtyFourKilobytesIsGeneralProtectionThroughTheIvt()
    {
        using var h = new CpuHarness().Execute("""
            mov word [13*4], handler
            mov word [13*4+2], 0
            mov bx, fault
            mov esi, 0x10000
            fault:
            mov al, [esi]
            mov dx, 0xBAD           ; not reached
            hlt
            handler:                ; real mode pushes no error code: [sp] is the faulting IP
            mov bp, sp
            mov cx, [bp]
            hlt
            """);
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
        Assert.NotEqual(0xBADu, h.Reg(RegisterIndex.Edx) & 0xFFFF);
    }

    /// <summary>UD2, and instructions outside the CPU's scope: P6's CMOV, x87 arithmetic, SSE.</summary>
    [Theory]
    [InlineData("ud2")]
    [InlineData("cmove ax, bx")]
    [InlineData("fsin")]
    [InlineData("movaps xmm0, xmm1")]
    public void UndefinedOpcodeIsDeliveredThroughTheIvtPointingAtTheInstruction(string instruction)
    {
        using var h = new CpuHarness().Execute($$"""
            mov word [6*4], handler
            mov word [6*4+2], 0
            mov bx, fault
            fault:
            {{instruction}}
            hlt
            handler:
            mov bp, sp
            mov cx, [bp]            ; IP
            mov dx, [bp+2]          ; CS
            mov di, [bp+4]          ; FLAGS
            hlt
            """);
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
        Assert.Equal(0u, h.Reg(RegisterIndex.Edx) & 0xFFFF);
        Assert.Equal(2u, h.Reg(RegisterIndex.Edi) & 2);
        Assert.Equal(CpuHarness.LoadAddress - 6, h.Reg(RegisterIndex.Esp));
    }

    [Fact]
    public void IdtLimitTooSmallEndsInTripleFault()
    {
        using var h = new CpuHarness().Load("""
            lidt [idtr]
            ud2                     ; #UD: no gate → #GP; no gate → #DF; no gate → shutdown
            hlt
            idtr: dw 0, 0, 0
            """);
        Assert.Equal(CpuStop.ShutDown, h.Run());
        Assert.True(h.Cpu.ShutDown);
    }

    [Fact]
    public void ProtectedModeFaultGoesThroughTheIdtWithTheSelectorAsErrorCode()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            lidt [idtr]
            {{GuestTables.EnterProtectedMode}}
            mov bx, fault
            mov ax, 0x1000          ; beyond the GDT's limit
            fault:
            mov ds, ax
            hlt
            {{GuestTables.Gdt}}
            {{GuestTables.Idt}}
            """);
        Assert.Equal(0x1000u, h.Reg(RegisterIndex.Edx) & 0xFFFF);
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
        Assert.Equal(GuestTables.Code16, h.Cpu.Segments[SegmentIndex.Cs].Selector);
    }

    [Fact]
    public void ProtectedModeUndefinedOpcodeUsesTheIdtGate()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            lidt [idtr]
            {{GuestTables.EnterProtectedMode}}
            mov bx, fault
            fault:
            ud2
            hlt
            {{GuestTables.Gdt}}
            {{GuestTables.Idt}}
            """);
        Assert.Equal(6u, h.Reg(RegisterIndex.Edi));
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
        Assert.Equal(GuestTables.Code16, h.Cpu.Segments[SegmentIndex.Cs].Selector);
    }
}
