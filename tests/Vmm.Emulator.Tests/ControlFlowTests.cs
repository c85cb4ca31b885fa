using System.Runtime.InteropServices;
using System.Text;
using Vmm.Accelerator.State;
using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

public sealed class ControlFlowTests
{
    private const uint CF = LazyFlags.CF;
    private const uint PF = LazyFlags.PF;
    private const uint ZF = LazyFlags.ZF;
    private const uint SF = LazyFlags.SF;
    private const uint OF = LazyFlags.OF;

    private static readonly uint[] FlagCombinations =
        [0, CF, ZF, SF, OF, PF, CF | ZF, SF | OF, ZF | SF, ZF | OF, SF | OF | ZF, CF | PF | ZF | SF | OF];

    /// <summary>Each condition over a set of flag values, in its rel8, rel16 and (o32) rel32 forms.</summary>
    [Theory]
    [InlineData("o")]
    [InlineData("no")]
    [InlineData("b")]
    [InlineData("ae")]
    [InlineData("e")]
    [InlineData("ne")]
    [InlineData("be")]
    [InlineData("a")]
    [InlineData("s")]
    [InlineData("ns")]
    [InlineData("p")]
    [InlineData("np")]
    [InlineData("l")]
    [InlineData("ge")]
    [InlineData("le")]
    [InlineData("g")]
    public void ConditionalJumpTakenExactlyWhenItsConditionHolds(string condition)
    {
        var source = new StringBuilder();
        string[] forms = ["short", "near", "near dword"];
        for (int form = 0; form < forms.Length; form++)
        {
            for (int k = 0; k < FlagCombinations.Length; k++)
            {
                int slot = 0x600 + (form * 0x20) + k;
                source.AppendLine($"""
                    push word 0x{FlagCombinations[k]:x}
                    popf
                    j{condition} {forms[form]} taken_{form}_{k}
                    mov byte [0x{slot:x}], 1
                    jmp short next_{form}_{k}
                    taken_{form}_{k}: mov byte [0x{slot:x}], 2
                    next_{form}_{k}:
                    """);
            }
        }

        source.AppendLine("hlt");
        using var h = new CpuHarness().Execute(source.ToString());
        for (int form = 0; form < forms.Length; form++)
        {
            for (int k = 0; k < FlagCombinations.Length; k++)
            {
                bool expected = Holds(condition, FlagCombinations[k]);
                byte outcome = h.Memory[0x600 + (form * 0x20) + k];
                Assert.True(outcome == (expected ? 2 : 1), $"j{condition} {forms[form]} with flags 0x{FlagCombinations[k]:x}: outcome {outcome}");
            }
        }
    }

    private static bool Holds(string condition, uint flags)
    {
        bool cf = (flags & CF) != 0, zf = (flags & ZF) != 0, sf = (flags & SF) != 0, of = (flags & OF) != 0, pf = (flags & PF) != 0;
        return condition switch
        {
            "o" => of,
            "no" => !of,
            "b" => cf,
            "ae" => !cf,
            "e" => zf,
            "ne" => !zf,
            "be" => cf || zf,
            "a" => !(cf || zf),
            "s" => sf,
            "ns" => !sf,
            "p" => pf,
            "np" => !pf,
            "l" => sf != of,
            "ge" => sf == of,
            "le" => zf || sf != of,
            "g" => !(zf || sf != of),
            _ => throw new ArgumentException(condition),
        };
    }

    [Fact]
    public void JumpForms()
    {
        using var h = new CpuHarness().Execute("""
                jmp short s1
                hlt
            s1: jmp near s2
                hlt
            s2: mov ax, s3
                jmp ax
                hlt
            s3: mov word [0x600], s4
                jmp [0x600]
                hlt
            s4: jmp 0x0700:(s5 - 0x7000)
                hlt
            s5: push cs
                pop dx                      ; DX = 0x0700
                mov word [0x600], s6
                mov word [0x602], 0
                jmp far [0x600]
                hlt
            s6: mov dword [0x610], s7
                mov word [0x614], 0
                jmp dword far [0x610]       ; m16:32
                hlt
            s7: jmp dword 0x0000:s8         ; ptr16:32
                hlt
            s8: mov bx, 0x55
                hlt
            """);
        Assert.Equal(0x55u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0x0700u, h.Reg(RegisterIndex.Edx) & 0xFFFF);
        Assert.Equal(0, h.Cpu.Segments[SegmentIndex.Cs].Selector);
    }

    [Fact]
    public void CallAndReturnForms()
    {
        using var h = new CpuHarness().Execute("""
                mov sp, 0x7000
                call near f1
                mov si, sp                  ; balanced: 0x7000
                push 0x1111
                push 0x2222
                call f2                     ; ret 4 releases both pushes
                mov di, sp
                mov bx, f1
                call bx
                mov word [0x600], f1
                call [0x600]
                call dword f3               ; pushes a 32-bit EIP
            after_f3:
                mov [0x640], sp
                call 0x0700:(f4 - 0x7000)
                mov [0x610], sp
                push word 0x3333
                call far [farptr]           ; retf 2 releases the push
                mov [0x612], sp
                call dword 0x0000:f6        ; o32 far call: 4-byte CS and EIP
                mov [0x614], sp
                hlt
            f1: inc word [0x620]
                ret
            f2: ret 4
            f3: mov ecx, [esp]
                mov [0x630], sp
                o32 ret
            f4: push cs
                pop dx
                mov bp, sp
                mov ax, [bp+2]              ; the pushed CS
                retf
            f5: retf 2
            f6: mov ebp, [esp+4]            ; the pushed CS, zero-extended
                mov [0x618], sp
                o32 retf
            farptr: dw f5, 0
            """);
        Assert.Equal(0x7000u, h.Reg(RegisterIndex.Esi));
        Assert.Equal(0x7000u, h.Reg(RegisterIndex.Edi));
        Assert.Equal(3, h.Read16(0x620));
        Assert.Equal(0x6FFC, h.Read16(0x630));
        Assert.Equal(0x7000, h.Read16(0x640));
        Assert.Equal(h.Reg(RegisterIndex.Ecx) & 0xFFFF, h.Reg(RegisterIndex.Ecx)); // pushed as 32 bits, high half 0
        Assert.Equal(0x0700u, h.Reg(RegisterIndex.Edx) & 0xFFFF);
        Assert.Equal(0u, h.Reg(RegisterIndex.Eax) & 0xFFFF);
        Assert.Equal(0x7000, h.Read16(0x610));
        Assert.Equal(0x7000, h.Read16(0x612));
        Assert.Equal(0x6FF8, h.Read16(0x618));
        Assert.Equal(0x7000, h.Read16(0x614));
        Assert.Equal(0u, h.Reg(RegisterIndex.Ebp));
        Assert.Equal(0x7000u, h.Reg(RegisterIndex.Esp));
    }

    [Fact]
    public void CallPushesTheAddressOfTheNextInstruction()
    {
        using var h = new CpuHarness().Execute("""
                mov di, back
                call f
            back:
                hlt
            f:  pop cx
                push cx
                ret
            """);
        Assert.Equal(h.Reg(RegisterIndex.Edi) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
    }

    [Fact]
    public void LoopCountsCxOrEcxByAddressSize()
    {
        using var h = new CpuHarness().Execute("""
                mov cx, 5
                xor ax, ax
            l1: inc ax
                loop l1
                mov [0x600], ax             ; 5
                mov [0x602], cx             ; 0
                mov cx, 0                   ; LOOP with CX = 0 runs 65536 times
                xor edx, edx
            l2: inc edx
                loop l2
                mov [0x610], edx
                mov ecx, 0x10002            ; a32 LOOP: ECX counts
                xor edx, edx
            l3: inc edx
                a32 loop l3
                mov [0x614], edx
                mov ecx, 0x10002            ; a16 LOOP: only CX, the upper half stays
                xor edx, edx
            l4: inc edx
                loop l4
                mov [0x618], edx
                mov [0x61C], ecx
                hlt
            """);
        Assert.Equal(5, h.Read16(0x600));
        Assert.Equal(0, h.Read16(0x602));
        Assert.Equal(0x10000u, h.Read32(0x610));
        Assert.Equal(0x10002u, h.Read32(0x614));
        Assert.Equal(2u, h.Read32(0x618));
        Assert.Equal(0x10000u, h.Read32(0x61C));
    }

    [Fact]
    public void LoopeAndLoopneStopOnTheFlag()
    {
        using var h = new CpuHarness().Execute("""
                mov si, equal_data
                mov cx, 5
                xor bx, bx
            l1: inc bx
                cmp byte [si], 1
                lea si, [si+1]
                loope l1
                mov [0x600], bx             ; 4: stops at the 2
                mov [0x602], cx             ; 1
                mov si, differ_data
                mov cx, 10
                xor bx, bx
            l2: inc bx
                cmp byte [si], 1
                lea si, [si+1]
                loopne l2
                mov [0x604], bx             ; 3: stops at the 1
                mov [0x606], cx             ; 7
                mov cx, 3                   ; LOOPE ends at CX = 0 even while equal
                xor bx, bx
            l3: inc bx
                cmp ax, ax
                loope l3
                mov [0x608], bx
                hlt
            equal_data: db 1, 1, 1, 2, 1
            differ_data: db 0, 0, 1, 0
            """);
        Assert.Equal(4, h.Read16(0x600));
        Assert.Equal(1, h.Read16(0x602));
        Assert.Equal(3, h.Read16(0x604));
        Assert.Equal(7, h.Read16(0x606));
        Assert.Equal(3, h.Read16(0x608));
    }

    [Fact]
    public void JcxzTestsCxAndJecxzTestsEcx()
    {
        using var h = new CpuHarness().Execute("""
                mov ecx, 0x10000            ; CX = 0, ECX != 0
                xor ax, ax
                xor bx, bx
                jcxz j1
                mov al, 1
            j1: jecxz j2
                mov ah, 1
            j2: mov ecx, 0
                jecxz j3
                mov bl, 1
            j3: mov cx, 1
                jcxz j4
                mov bh, 1
            j4: hlt
            """);
        Assert.Equal(0x0100u, h.Reg(RegisterIndex.Eax) & 0xFFFF);
        Assert.Equal(0x0100u, h.Reg(RegisterIndex.Ebx) & 0xFFFF);
    }

    [Fact]
    public void SoftwareInterruptThroughTheIvtAndIretBack()
    {
        using var h = new CpuHarness().Execute("""
                mov word [0x80*4], handler
                mov word [0x80*4+2], 0
                sti
                mov ax, 1
                stc
                mov di, after
                int 0x80
            after:
                pushf
                pop dx                      ; flags restored by IRET: CF and IF
                hlt
            handler:
                pushf
                pop bx                      ; IF clear inside the handler
                mov bp, sp
                mov cx, [bp]                ; return IP
                mov si, [bp+2]              ; return CS
                add ax, 41                  ; clears CF here; IRET restores it
                iret
            """);
        Assert.Equal(42u, h.Reg(RegisterIndex.Eax) & 0xFFFF);
        Assert.Equal(0u, h.Reg(RegisterIndex.Ebx) & Cpu.IF);
        Assert.Equal(h.Reg(RegisterIndex.Edi) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
        Assert.Equal(0u, h.Reg(RegisterIndex.Esi) & 0xFFFF);
        Assert.Equal(CF | Cpu.IF, h.Reg(RegisterIndex.Edx) & (CF | Cpu.IF));
        Assert.Equal(CpuHarness.LoadAddress, h.Reg(RegisterIndex.Esp));
    }

    [Fact]
    public void Int3AndIntoTrapPastTheInstruction()
    {
        using var h = new CpuHarness().Execute("""
                mov word [3*4], h3
                mov word [3*4+2], 0
                mov word [4*4], h4
                mov word [4*4+2], 0
                xor bx, bx
                xor cx, cx
                int3
                int 3
                mov al, 0x7F
                add al, 1                   ; OF = 1
                into                        ; -> h4
                mov al, 1
                add al, 1                   ; OF = 0
                into                        ; nothing
                hlt
            h3: inc bx
                iret
            h4: inc cx
                iret
            """);
        Assert.Equal(2u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(1u, h.Reg(RegisterIndex.Ecx));
    }

    [Fact]
    public void IretdInRealModePopsThirtyTwoBitFrame()
    {
        using var h = new CpuHarness().Execute("""
                push dword 0x0001           ; EFLAGS: CF
                push dword 0
                push dword target
                iretd
                hlt
            target:
                mov ax, 7
                hlt
            """);
        Assert.Equal(7u, h.Reg(RegisterIndex.Eax));
        Assert.Equal(CF, h.Flags & CF);
        Assert.Equal(CpuHarness.LoadAddress, h.Reg(RegisterIndex.Esp));
    }

    [Fact]
    public void IretSettingIfLetsThePendingStateThrough()
    {
        // IRET that sets IF ends the block: the HLT after it sees IF set.
        using var h = new CpuHarness().Execute("""
                cli
                push word 0x0202
                push word 0
                push word target
                iret
            target:
                hlt
            """);
        Assert.NotEqual(0u, h.Cpu.FlagsRest & Cpu.IF);
    }

    [Fact]
    public void EnterAndLeave()
    {
        using var h = new CpuHarness().Execute("""
                mov sp, 0x7000
                mov bp, 0x1234
                enter 8, 0
                mov [0x600], bp             ; 0x6FFE
                mov [0x602], sp             ; 0x6FF6
                leave
                mov [0x604], bp             ; 0x1234
                mov [0x606], sp             ; 0x7000
                mov sp, 0x7000
                mov bp, 0x6800
                mov word [0x67FE], 0xAAAA   ; the outer frame's display
                enter 4, 2
                mov [0x608], bp             ; 0x6FFE
                mov [0x60A], sp             ; 0x6FFE - 4 (display) - 4 (alloc) = 0x6FF6
                leave
                mov [0x60C], bp             ; 0x6800
                mov [0x60E], sp             ; 0x7000
                mov esp, 0x6000
                mov ebp, 0x12345678
                o32 enter 0, 1
                mov [0x610], ebp            ; 0x5FFC
                mov [0x614], esp            ; 0x5FF8
                o32 leave
                mov [0x618], ebp
                mov [0x61C], esp
                hlt
            """);
        Assert.Equal(0x6FFE, h.Read16(0x600));
        Assert.Equal(0x6FF6, h.Read16(0x602));
        Assert.Equal(0x1234, h.Read16(0x604));
        Assert.Equal(0x7000, h.Read16(0x606));
        Assert.Equal(0x6FFE, h.Read16(0x608));
        Assert.Equal(0x6FF6, h.Read16(0x60A));
        Assert.Equal(0x6800, h.Read16(0x60C));
        Assert.Equal(0x7000, h.Read16(0x60E));

        // ENTER 4, 2's frame: old BP, the copied display entry, the new frame pointer.
        Assert.Equal(0x6800, h.Read16(0x6FFE));
        Assert.Equal(0xAAAA, h.Read16(0x6FFC));
        Assert.Equal(0x6FFE, h.Read16(0x6FFA));

        Assert.Equal(0x5FFCu, h.Read32(0x610));
        Assert.Equal(0x5FF8u, h.Read32(0x614));
        Assert.Equal(0x12345678u, h.Read32(0x5FFC));
        Assert.Equal(0x5FFCu, h.Read32(0x5FF8));
        Assert.Equal(0x12345678u, h.Read32(0x618));
        Assert.Equal(0x6000u, h.Read32(0x61C));
    }

    [Fact]
    public void BoundRaisesBrAsAFault()
    {
        using var h = new CpuHarness().Execute("""
                mov word [5*4], hbr
                mov word [5*4+2], 0
                mov word [0x600], 10
                mov word [0x602], 20
                mov word [0x604], -10
                mov word [0x606], -1
                xor cx, cx
                mov ax, 15
                bound ax, [0x600]           ; in range
                mov dx, -5
                bound dx, [0x604]           ; in range (signed)
                mov ax, 25
                bound ax, [0x600]           ; #BR: the handler fixes AX and returns to the BOUND
                hlt
            hbr: inc cx
                mov ax, 20
                iret
            """);
        Assert.Equal(1u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(20u, h.Reg(RegisterIndex.Eax) & 0xFFFF);
    }

    [Fact]
    public void ProtectedModeFarCallReturnAndCodeSizeSwitch()
    {
        using var h = new CpuHarness();
        FlatProtectedMode.Enter(h);
        h.Execute("""
            bits 32
                call 0x08:f32
                mov [0x600], eax
                jmp 0x18:code16
            bits 16
            code16:
                push cs
                pop bx                      ; 0x18
                jmp dword 0x08:back32
            bits 32
            back32:
                push dword 0x202
                push dword 0x08
                push dword after_iret
                iretd
            after_iret:
                mov esi, 1
                hlt
            f32: mov eax, 0x12345678
                mov ecx, [esp+4]            ; the pushed CS
                retf
            """);
        Assert.Equal(0x12345678u, h.Read32(0x600));
        Assert.Equal(0x08u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0x18u, h.Reg(RegisterIndex.Ebx) & 0xFFFF);
        Assert.Equal(1u, h.Reg(RegisterIndex.Esi));
        Assert.True(h.Cpu.Segments[SegmentIndex.Cs].DefaultBig);
        Assert.NotEqual(0u, h.Cpu.FlagsRest & Cpu.IF);
    }

    [Fact]
    public void ProtectedModeFarJumpBeyondTheLimitFaultsWithCsUnchanged()
    {
        using var h = new CpuHarness();
        FlatProtectedMode.Enter(h);
        h.Execute($"""
            bits 32
                {FlatProtectedMode.Gate(13, "gp")}
                mov edi, faulting
            faulting:
                jmp 0x18:0x12345            ; a 16-bit segment's limit is 0xFFFF
                hlt
            gp: pop ebx                     ; error code
                mov ecx, [esp]              ; EIP: the JMP
                mov edx, [esp+4]            ; CS: still 0x08
                hlt
            """);
        Assert.Equal(0u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(h.Reg(RegisterIndex.Edi), h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0x08u, h.Reg(RegisterIndex.Edx));
    }

    [Fact]
    public void IretToAnOuterLevelAndBackThroughAnInterruptGate()
    {
        using var h = new CpuHarness();
        FlatProtectedMode.Enter(h);
        h.Execute($"""
            bits 32
                {FlatProtectedMode.Gate(13, "gp")}
                push dword 0x33             ; SS
                push dword 0x8000           ; ESP
                push dword 0x0202           ; EFLAGS: IF, IOPL 0
                push dword 0x2B             ; CS: ring 3
                push dword user
                iretd
            user:
                push cs
                pop eax                     ; 0x2B
                push dword 0x33
                pop ds                      ; DS was nulled on the way out
                mov dword [0x8100], 0xCAFE
                mov edi, faulting
            faulting:
                in al, 0x80                 ; CPL 3 > IOPL 0: #GP(0)
                hlt
            gp: pop ebx                     ; error code
                mov ecx, [esp]              ; EIP
                mov edx, [esp+4]            ; CS
                mov esi, [esp+12]           ; ESP
                mov ebp, [esp+16]           ; SS
                hlt
            """);
        Assert.Equal(0x2Bu, h.Reg(RegisterIndex.Eax) & 0xFFFF);
        Assert.Equal(0xCAFEu, h.Read32(0x8100));
        Assert.Equal(0u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(h.Reg(RegisterIndex.Edi), h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0x2Bu, h.Reg(RegisterIndex.Edx));
        Assert.Equal(0x8000u, h.Reg(RegisterIndex.Esi));
        Assert.Equal(0x33u, h.Reg(RegisterIndex.Ebp));
        Assert.Empty(h.PortWrites);
        Assert.Equal(0, h.Cpu.Cpl);
    }

    [Fact]
    public void RetfWithImmediateToAnOuterLevelReleasesOnBothStacks()
    {
        using var h = new CpuHarness();
        FlatProtectedMode.Enter(h);
        h.Execute($"""
            bits 32
                {FlatProtectedMode.Gate(13, "gp")}
                mov esp, 0x9000
                push dword 0x33             ; SS
                push dword 0x8000           ; ESP
                push dword 0x1111           ; parameters
                push dword 0x2222
                push dword 0x2B             ; CS
                push dword user
                retf 8
            user:
                mov ebx, esp                ; 0x8000 + 8
                hlt                         ; #GP at CPL 3
            gp: mov ecx, [esp+4]            ; EIP after the error code
                hlt
            """);
        Assert.Equal(0x8008u, h.Reg(RegisterIndex.Ebx));
        Assert.True(h.Cpu.Segments[SegmentIndex.Ds].Unusable);
        Assert.True(h.Cpu.Segments[SegmentIndex.Es].Unusable);
    }

    [Fact]
    public void InterruptGateAndIretdAtTheSameLevel()
    {
        using var h = new CpuHarness();
        FlatProtectedMode.Enter(h);
        h.Execute($"""
            bits 32
                {FlatProtectedMode.Gate(0x40, "handler")}
                mov esp, 0x9000
                stc
                int 0x40
                mov ebx, esp
                hlt
            handler:
                mov eax, 0x99
                mov ecx, [esp+4]            ; CS
                clc
                iretd
            """);
        Assert.Equal(0x99u, h.Reg(RegisterIndex.Eax));
        Assert.Equal(0x08u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0x9000u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(CF, h.Flags & CF);
    }
}

/// <summary>
/// Puts a harness's CPU straight into 32-bit protected mode (CS = 0x08, data 0x10, CPL 0) with a flat GDT, a TSS for
/// ring 0's stack and an empty IDT, without needing LGDT or MOV CR0 (other families).
/// </summary>
internal static class FlatProtectedMode
{
    public const ushort Code32 = 0x08;
    public const ushort Data32 = 0x10;
    public const ushort Code16 = 0x18;
    public const ushort Data16 = 0x20;
    public const ushort UserCode32 = 0x2B;
    public const ushort UserData32 = 0x33;

    private const uint GdtBase = 0x1000;
    private const uint IdtBase = 0x2000;
    private const uint TssBase = 0x3000;

    private static readonly ulong[] Gdt =
    [
        0,
        0x00CF_9A00_0000_FFFF, // 0x08 code, 32-bit, ring 0, flat
        0x00CF_9200_0000_FFFF, // 0x10 data, 32-bit, ring 0, flat
        0x0000_9A00_0000_FFFF, // 0x18 code, 16-bit, ring 0, 64 KiB
        0x0000_9200_0000_FFFF, // 0x20 data, 16-bit, ring 0, 64 KiB
        0x00CF_FA00_0000_FFFF, // 0x28 code, 32-bit, ring 3, flat
        0x00CF_F200_0000_FFFF, // 0x30 data, 32-bit, ring 3, flat
    ];

    public static void Enter(CpuHarness h)
    {
        Cpu cpu = h.Cpu;
        for (int i = 0; i < Gdt.Length; i++)
        {
            MemoryMarshal.Write(h.Memory[(int)(GdtBase + (i * 8))..], Gdt[i]);
        }

        MemoryMarshal.Write(h.Memory[(int)(TssBase + 4)..], 0x9000u); // ESP0
        MemoryMarshal.Write(h.Memory[(int)(TssBase + 8)..], (uint)Data32); // SS0
        cpu.Gdtr = new DescriptorTable(GdtBase, (ushort)((Gdt.Length * 8) - 1));
        cpu.Idtr = new DescriptorTable(IdtBase, 0x7FF);
        cpu.Tr = new Segment { Selector = 0x38, Base = TssBase, Limit = 0x67, Type = 0xB, Present = true };
        cpu.Cr0 |= 1;
        cpu.OnModeChanged();
        cpu.LoadSegmentCache(SegmentIndex.Cs, Descriptor(Code32));
        foreach (int seg in (int[])[SegmentIndex.Ss, SegmentIndex.Ds, SegmentIndex.Es, SegmentIndex.Fs, SegmentIndex.Gs])
        {
            cpu.LoadSegmentCache(seg, Descriptor(Data32));
        }

        cpu.Cpl = 0;
    }

    /// <summary>
    /// 32-bit code (flat DS) that installs a ring-0 32-bit interrupt gate for <paramref name="vector"/> to
    /// <paramref name="label"/> (a snippet label, below 64 KiB).
    /// </summary>
    public static string Gate(int vector, string label, int dpl = 0) => $"""
        mov dword [0x{IdtBase + (vector * 8):x}], 0x{Code32:x}0000 + {label}
        mov dword [0x{IdtBase + (vector * 8) + 4:x}], 0x{0x8E00 | (dpl << 13):x}
        """;

    private static Segment Descriptor(ushort selector)
    {
        Segment segment = Cpu.DecodeDescriptor(selector, Gdt[selector >> 3]);
        segment.Type |= 1;
        return segment;
    }
}
