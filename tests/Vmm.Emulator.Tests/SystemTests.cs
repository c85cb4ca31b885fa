using System.Text;
using Vmm.Accelerator.State;
using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

public sealed class SystemTests
{
    private const uint Cr0Pe = 1;

    /// <summary>Runs a snippet that should fault with <paramref name="vector"/> through the IVT at the instruction after the label `fault`.</summary>
    private static CpuHarness ExpectRealModeFault(int vector, string body)
    {
        var h = new CpuHarness().Execute($"""
            {GuestTables.InstallIvtHandler(vector)}
            mov bx, fault
            mov di, 0xFFFF
            {body}
            mov di, 0xBAD
            hlt
            {GuestTables.IvtHandler(vector)}
            """);
        Assert.Equal((uint)vector, h.Reg(RegisterIndex.Edi) & 0xFFFF);
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
        return h;
    }

    [Fact]
    public void LgdtAndSgdtRoundTripWithTwentyFourBitBasesForSixteenBitOperands()
    {
        using var h = new CpuHarness().Execute("""
            o32 lgdt [image]
            o32 sgdt [0x600]        ; 32 bits of base
            sgdt [0x610]            ; 24 bits, high byte stored as 0
            lgdt [image]            ; 24 bits loaded
            hlt
            image: dw 0x1234
                   dd 0xAB123456
            """);
        Assert.Equal(0x1234, h.Read16(0x600));
        Assert.Equal(0xAB12_3456u, h.Read32(0x602));
        Assert.Equal(0x1234, h.Read16(0x610));
        Assert.Equal(0x0012_3456u, h.Read32(0x612));
        Assert.Equal(new DescriptorTable(0x12_3456, 0x1234), h.Cpu.Gdtr);
    }

    [Fact]
    public void LidtAndSidtRoundTrip()
    {
        using var h = new CpuHarness().Execute("""
            sidt [0x600]
            o32 lidt [image]
            o32 sidt [0x610]
            hlt
            image: dw 0x07FF
                   dd 0x00090000
            """);
        Assert.Equal(0x3FF, h.Read16(0x600));
        Assert.Equal(0u, h.Read32(0x602));
        Assert.Equal(0x7FF, h.Read16(0x610));
        Assert.Equal(0x0009_0000u, h.Read32(0x612));
        Assert.Equal(new DescriptorTable(0x9_0000, 0x7FF), h.Cpu.Idtr);
    }

    [Fact]
    public void MovCr0ReadsBackWithEtSetAndReservedBitsDropped()
    {
        using var h = new CpuHarness().Execute("""
            mov ebx, cr0
            mov eax, 0x00000102     ; MP and a reserved bit; ET clear
            mov cr0, eax
            mov ecx, cr0
            hlt
            """);
        Assert.Equal(0x6000_0010u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0x0000_0012u, h.Reg(RegisterIndex.Ecx));
    }

    [Fact]
    public void MovCr0SetsAndClearsProtectionEnable()
    {
        using var h = new CpuHarness().Execute("""
            mov eax, cr0
            or al, 1
            mov cr0, eax
            mov ebx, cr0
            and al, 0xFE
            mov cr0, eax
            mov ecx, cr0
            hlt
            """);
        Assert.Equal(Cr0Pe, h.Reg(RegisterIndex.Ebx) & Cr0Pe);
        Assert.Equal(0u, h.Reg(RegisterIndex.Ecx) & Cr0Pe);
        Assert.False(h.Cpu.ProtectedMode);
    }

    [Fact]
    public void LmswSetsProtectionEnableButCannotClearIt()
    {
        using var h = new CpuHarness().Execute("""
            mov ax, 0x000F          ; PE MP EM TS
            lmsw ax
            smsw bx
            mov word [0x500], 0xFFF0 ; nothing of the low four bits, and bits LMSW must ignore
            lmsw [0x500]
            mov edx, cr0
            hlt
            """);
        Assert.Equal(0x1Fu, h.Reg(RegisterIndex.Ebx) & 0x1F);
        Assert.Equal(0x6000_0011u, h.Reg(RegisterIndex.Edx));
        Assert.True(h.Cpu.ProtectedMode);
    }

    [Fact]
    public void SmswStoresSixteenBitsExceptIntoAThirtyTwoBitRegister()
    {
        using var h = new CpuHarness().Execute("""
            mov ebx, 0xFFFFFFFF
            smsw bx
            o32 smsw ecx
            mov dword [0x500], 0xFFFFFFFF
            smsw [0x500]
            hlt
            """);
        Assert.Equal(0xFFFF_0010u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0x6000_0010u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0xFFFF_0010u, h.Read32(0x500));
    }

    [Theory]
    [InlineData(0x8000_0000u)]  // PG without PE
    [InlineData(0x2000_0000u)]  // NW without CD
    public void InvalidCr0CombinationsAreGeneralProtection(uint value)
    {
        using CpuHarness h = ExpectRealModeFault(13, $"""
            mov eax, {value}
            fault:
            mov cr0, eax
            """);
        Assert.Equal(0x6000_0010u, h.Cpu.Cr0);
    }

    [Fact]
    public void EnablingPagingStopsTheCpuRightAfterTheWrite()
    {
        using var h = new CpuHarness().Load("""
            mov eax, cr0
            or eax, 0x80000001
            mov cr0, eax
            after:
            mov dx, 0xBAD
            hlt
            """);
        Assert.Equal(CpuStop.Failed, h.Run());
        Assert.Contains("paging", h.Cpu.FailureDetail);
        Assert.Equal(0u, h.Reg(RegisterIndex.Edx));
        Assert.Equal(0x8000_0000u, h.Cpu.Cr0 & 0x8000_0000u);
    }

    [Fact]
    public void Cr2Cr3AndCr4RoundTrip()
    {
        using var h = new CpuHarness().Execute("""
            mov eax, 0x12345678
            mov cr2, eax
            mov eax, 0x00ABC000
            mov cr3, eax
            mov eax, 0x0000000C     ; TSD and DE
            mov cr4, eax
            mov ebx, cr2
            mov ecx, cr3
            mov edx, cr4
            hlt
            """);
        Assert.Equal(0x1234_5678u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0x00AB_C000u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0xCu, h.Reg(RegisterIndex.Edx));
    }

    [Fact]
    public void UnimplementedCr4BitIsGeneralProtection()
    {
        using CpuHarness h = ExpectRealModeFault(13, """
            mov eax, 0x20           ; PAE
            fault:
            mov cr4, eax
            """);
        Assert.Equal(0u, h.Cpu.Cr4);
    }

    [Theory]
    [InlineData("db 0x0F, 0x22, 0xC8")]         // mov cr1, eax
    [InlineData("db 0x0F, 0x20, 0xE8")]         // mov eax, cr5
    [InlineData("db 0xF0, 0x0F, 0x22, 0xC0")]   // lock mov cr0 (AMD's CR8 in 32-bit code)
    public void OtherControlRegistersAreUndefined(string bytes)
    {
        using CpuHarness h = ExpectRealModeFault(6, $"fault:\n{bytes}");
    }

    [Fact]
    public void DebugRegistersAreStoredWithDr4AndDr5AliasingDr6AndDr7()
    {
        using var h = new CpuHarness().Execute("""
            mov eax, 0x11111111
            mov dr0, eax
            mov eax, 0x00000001
            mov dr4, eax            ; DR6, fixed bits set
            mov eax, 0x00000003
            mov dr5, eax            ; DR7, bit 10 set
            mov ebx, dr0
            mov ecx, dr6
            mov edx, dr7
            mov esi, dr5
            hlt
            """);
        Assert.Equal(0x1111_1111u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0xFFFF_0FF1u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0x0000_0403u, h.Reg(RegisterIndex.Edx));
        Assert.Equal(0x0000_0403u, h.Reg(RegisterIndex.Esi));
    }

    [Fact]
    public void Dr4IsUndefinedWithDebugExtensions()
    {
        using CpuHarness h = ExpectRealModeFault(6, """
            mov eax, 8
            mov cr4, eax
            fault:
            mov eax, dr4
            """);
    }

    [Fact]
    public void CltsClearsTaskSwitched()
    {
        using var h = new CpuHarness().Execute("""
            mov eax, cr0
            or al, 8
            mov cr0, eax
            mov ebx, cr0
            clts
            mov ecx, cr0
            hlt
            """);
        Assert.Equal(8u, h.Reg(RegisterIndex.Ebx) & 8);
        Assert.Equal(0u, h.Reg(RegisterIndex.Ecx) & 8);
    }

    [Fact]
    public void CpuidReportsTheVendorAndA486WithItsFeatures()
    {
        using var h = new CpuHarness().Execute("""
            xor eax, eax
            cpuid
            mov [0x500], ebx
            mov [0x504], edx
            mov [0x508], ecx
            mov [0x50C], eax
            mov eax, 1
            cpuid
            mov [0x510], eax
            mov [0x514], edx
            mov [0x518], ecx
            mov eax, 0x80000000
            cpuid
            mov [0x51C], eax
            hlt
            """);
        Assert.Equal("VmmSoftCPU86", Encoding.ASCII.GetString(h.Memory.Slice(0x500, 12)));
        Assert.Equal(1u, h.Read32(0x50C));
        Assert.Equal(4u, (h.Read32(0x510) >> 8) & 0xF);
        Assert.Equal(0x35u, h.Read32(0x514));   // FPU DE TSC MSR
        Assert.Equal(0u, h.Read32(0x518));
        Assert.Equal(0u, h.Read32(0x51C));
    }

    [Fact]
    public void RdtscCountsUp()
    {
        using var h = new CpuHarness().Execute("""
            rdtsc
            mov esi, eax
            mov edi, edx
            mov ecx, 1000
            dec ecx
            rdtsc
            hlt
            """);
        ulong first = h.Reg(RegisterIndex.Esi) | ((ulong)h.Reg(RegisterIndex.Edi) << 32);
        ulong second = h.Reg(RegisterIndex.Eax) | ((ulong)h.Reg(RegisterIndex.Edx) << 32);
        Assert.True(second > first, $"{second} > {first}");
    }

    [Fact]
    public void TimeStampCounterMsrSetsWhatRdtscReads()
    {
        using var h = new CpuHarness().Execute("""
            mov ecx, 0x10
            mov edx, 0x00000100
            xor eax, eax
            wrmsr
            rdtsc
            mov esi, eax
            mov edi, edx
            rdmsr
            hlt
            """);
        Assert.Equal(0x100u, h.Reg(RegisterIndex.Edi));
        Assert.Equal(0x100u, h.Reg(RegisterIndex.Edx));
        Assert.True(h.Reg(RegisterIndex.Eax) >= h.Reg(RegisterIndex.Esi));
        Assert.True(h.Cpu.TimeStampCounter >= 0x100_0000_0000ul);
    }

    [Fact]
    public void ApicBaseAndSysenterMsrsAreKept()
    {
        using var h = new CpuHarness().Execute("""
            mov ecx, 0x175
            rdmsr                   ; never written: 0
            mov [0x500], eax
            mov [0x504], edx
            mov eax, 0xC0DE0000
            mov edx, 0x12
            wrmsr
            mov ecx, 0x1B
            mov eax, 0xFEE00900
            xor edx, edx
            wrmsr
            xor eax, eax
            mov ecx, 0x175
            rdmsr
            hlt
            """);
        Assert.Equal(0u, h.Read32(0x500) | h.Read32(0x504));
        Assert.Equal(0xC0DE_0000u, h.Reg(RegisterIndex.Eax));
        Assert.Equal(0x12u, h.Reg(RegisterIndex.Edx));
        Assert.Equal(0xFEE0_0900ul, h.Cpu.ApicBase);
        Assert.Equal(0x12_C0DE_0000ul, h.Cpu.Msrs[0x175]);
    }

    [Fact]
    public void UnknownMsrIsGeneralProtection()
    {
        using CpuHarness h = ExpectRealModeFault(13, """
            mov ecx, 0xC0000080     ; EFER: not on a 486
            fault:
            rdmsr
            """);
    }

    [Fact]
    public void CacheAndTlbInstructionsAreNoOps()
    {
        using var h = new CpuHarness().Execute("""
            invd
            wbinvd
            invlpg [0x1234]
            mov ax, 0x55
            hlt
            """);
        Assert.Equal(0x55u, h.Reg(RegisterIndex.Eax));
    }

    [Theory]
    [InlineData("sldt ax")]
    [InlineData("str ax")]
    [InlineData("lldt ax")]
    [InlineData("ltr ax")]
    [InlineData("lar ax, bx")]
    [InlineData("lsl ax, bx")]
    [InlineData("verr ax")]
    [InlineData("verw ax")]
    public void ProtectedModeOnlyInstructionsAreUndefinedInRealMode(string instruction)
    {
        using CpuHarness h = ExpectRealModeFault(6, $"fault:\n{instruction}");
    }

    [Fact]
    public void LtrLoadsTheTaskRegisterAndMarksTheTssBusy()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            lidt [idtr]
            {{GuestTables.EnterProtectedMode}}
            mov ax, {{GuestTables.Tss32}}
            ltr ax
            str si
            mov al, [gdt + {{GuestTables.Tss32}} + 5]
            mov [0x500], al
            mov ax, {{GuestTables.Tss32}}
            mov bx, fault
            fault:
            ltr ax                  ; busy now: #GP(selector)
            hlt
            {{GuestTables.Gdt}}
            {{GuestTables.Idt}}
            """);
        Assert.Equal(GuestTables.Tss32, h.Cpu.Tr.Selector);
        Assert.Equal(0x600ul, h.Cpu.Tr.Base);
        Assert.Equal(0x67u, h.Cpu.Tr.Limit);
        Assert.Equal(0xB, h.Cpu.Tr.Type);
        Assert.Equal((uint)GuestTables.Tss32, h.Reg(RegisterIndex.Esi) & 0xFFFF);
        Assert.Equal(0x8B, h.Memory[0x500]);
        Assert.Equal(13u, h.Reg(RegisterIndex.Edi));
        Assert.Equal((uint)GuestTables.Tss32, h.Reg(RegisterIndex.Edx) & 0xFFFF);
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
    }

    [Fact]
    public void LldtMakesLocalSelectorsUsable()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            {{GuestTables.EnterProtectedMode}}
            mov dword [0x708], 0x0000FFFF   ; LDT entry 1: data, base 0x20000, 64 KiB
            mov dword [0x70C], 0x00009202
            mov ax, {{GuestTables.Ldt}}
            lldt ax
            mov ax, 0x0C                    ; index 1, TI = 1
            mov es, ax
            mov word [es:0x10], 0x4242
            sldt edi
            hlt
            {{GuestTables.Gdt}}
            """);
        Assert.Equal(GuestTables.Ldt, h.Cpu.Ldtr.Selector);
        Assert.Equal(0x700ul, h.Cpu.Ldtr.Base);
        Assert.Equal(0x4242, h.Read16(0x20010));
        Assert.Equal((uint)GuestTables.Ldt, h.Reg(RegisterIndex.Edi));
    }

    [Fact]
    public void LldtOfSomethingElseThanAnLdtIsGeneralProtection()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            lidt [idtr]
            {{GuestTables.EnterProtectedMode}}
            mov ax, {{GuestTables.Tss32}}
            mov bx, fault
            fault:
            lldt ax
            hlt
            {{GuestTables.Gdt}}
            {{GuestTables.Idt}}
            """);
        Assert.Equal(13u, h.Reg(RegisterIndex.Edi));
        Assert.Equal((uint)GuestTables.Tss32, h.Reg(RegisterIndex.Edx) & 0xFFFF);
    }

    [Fact]
    public void LarLslVerrAndVerwAnswerInZeroFlag()
    {
        using var h = new CpuHarness().Execute($$"""
            cli
            {{GuestTables.EnterProtectedMode}}
            mov bx, {{GuestTables.OddBase}}
            mov eax, 0xFFFFFFFF
            lar eax, bx
            setz [0x500]
            mov [0x510], eax
            lsl ecx, bx
            setz [0x501]
            mov [0x514], ecx
            mov bx, {{GuestTables.Flat}}
            lsl ecx, bx
            mov [0x518], ecx
            mov bx, {{GuestTables.ExecuteOnly}}
            verr bx
            setz [0x502]            ; execute-only: not readable
            mov bx, {{GuestTables.ReadOnlyDpl3}}
            verr bx
            setz [0x503]
            verw bx
            setz [0x504]            ; read-only: not writable
            mov bx, {{GuestTables.Data16}}
            verw bx
            setz [0x505]
            mov bx, 0x1000          ; beyond the GDT
            mov esi, 0x5A5A5A5A
            lar esi, bx
            setz [0x506]
            hlt
            {{GuestTables.Gdt}}
            """);
        Assert.Equal(1, h.Memory[0x500]);
        Assert.Equal(0x0000_9200u, h.Read32(0x510) & 0xFFFF_FEFF);    // the accessed bit depends on earlier loads
        Assert.Equal(1, h.Memory[0x501]);
        Assert.Equal(0xFFFu, h.Read32(0x514));
        Assert.Equal(0xFFFF_FFFFu, h.Read32(0x518));
        Assert.Equal(0, h.Memory[0x502]);
        Assert.Equal(1, h.Memory[0x503]);
        Assert.Equal(0, h.Memory[0x504]);
        Assert.Equal(1, h.Memory[0x505]);
        Assert.Equal(0, h.Memory[0x506]);
        Assert.Equal(0x5A5A_5A5Au, h.Reg(RegisterIndex.Esi));
    }

    /// <summary>
    /// Runs one privileged instruction at CPL 3. The CPU is put in protected mode at CPL 3 directly (no far
    /// transfer needed), with an IDT whose #GP gate leads to a conforming ring-0 code segment, so that delivery
    /// needs no stack switch. One step executes the instruction and delivers the fault.
    /// </summary>
    [Theory]
    [InlineData("hlt")]
    [InlineData("lgdt [0x600]")]
    [InlineData("lidt [0x600]")]
    [InlineData("mov cr0, eax")]
    [InlineData("mov eax, cr0")]
    [InlineData("mov cr3, eax")]
    [InlineData("mov dr7, eax")]
    [InlineData("mov eax, dr0")]
    [InlineData("lmsw ax")]
    [InlineData("clts")]
    [InlineData("rdmsr")]
    [InlineData("wrmsr")]
    [InlineData("invd")]
    [InlineData("wbinvd")]
    [InlineData("invlpg [0]")]
    [InlineData("lldt ax")]
    [InlineData("ltr ax")]
    [InlineData("rdtsc", 4u)]
    public void PrivilegedInstructionAtCplThreeIsGeneralProtection(string instruction, uint cr4 = 0)
    {
        using CpuHarness h = AtCplThree(instruction, cr4);
        Assert.Equal(CpuStop.Stepped, h.Cpu.Run(singleStep: true));
        Assert.Equal(0x7D00u, h.Cpu.Eip);
        Assert.Equal(0x0B, h.Cpu.Segments[SegmentIndex.Cs].Selector);
        Assert.Equal(0, h.Read16(h.Reg(RegisterIndex.Esp)));                 // error code
        Assert.Equal(CpuHarness.LoadAddress, h.Read16(h.Reg(RegisterIndex.Esp) + 2)); // the instruction
    }

    [Theory]
    [InlineData("rdtsc")]
    [InlineData("smsw ax")]
    [InlineData("sgdt [0x600]")]
    [InlineData("str ax")]
    [InlineData("cpuid")]
    public void UnprivilegedInstructionRunsAtCplThree(string instruction)
    {
        using CpuHarness h = AtCplThree(instruction, 0);
        Assert.Equal(CpuStop.Stepped, h.Cpu.Run(singleStep: true));
        Assert.NotEqual(0x7D00u, h.Cpu.Eip);
        Assert.Equal(3, h.Cpu.Cpl);
    }

    private static CpuHarness AtCplThree(string instruction, uint cr4)
    {
        var h = new CpuHarness();
        Span<byte> memory = h.Memory;
        BitConverter.TryWriteBytes(memory[0x1008..], 0x00009E000000FFFFul);    // 0x08: conforming code, DPL 0
        BitConverter.TryWriteBytes(memory[(0x2000 + (13 * 8))..], 0x0000_8600_0008_7D00ul); // #GP → 0x08:0x7D00
        h.Load($"""
            {instruction}
            hlt
            times 0x100 - ($ - $$) db 0
            hlt
            """);
        h.Cpu.Gdtr = new DescriptorTable(0x1000, 0x0F);
        h.Cpu.Idtr = new DescriptorTable(0x2000, 0x7FF);
        h.Cpu.Cr0 |= Cr0Pe;
        h.Cpu.Cr4 = cr4;
        h.Cpu.OnModeChanged();
        h.Cpu.Cpl = 3;
        return h;
    }
}
