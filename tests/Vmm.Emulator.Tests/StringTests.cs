using Vmm.Accelerator.State;
using Vmm.Emulator.Instructions;
using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

public sealed class StringTests
{
    [Theory]
    [InlineData("movsb", 1)]
    [InlineData("movsw", 2)]
    [InlineData("movsd", 4)]
    public void RepMovsForward(string instruction, int size)
    {
        using var h = new CpuHarness();
        Fill(h, 0x1000, 64);
        h.Execute($"""
                cld
                mov si, 0x1000
                mov di, 0x2000
                mov cx, {32 / size}
                rep {instruction}
                hlt
            """);
        Assert.True(h.Memory.Slice(0x1000, 32).SequenceEqual(h.Memory.Slice(0x2000, 32)));
        Assert.Equal(0, h.Memory[0x2020]);
        Assert.Equal(0x1020u, h.Reg(RegisterIndex.Esi));
        Assert.Equal(0x2020u, h.Reg(RegisterIndex.Edi));
        Assert.Equal(0u, h.Reg(RegisterIndex.Ecx));
    }

    [Theory]
    [InlineData("movsb", 1)]
    [InlineData("movsw", 2)]
    [InlineData("movsd", 4)]
    public void RepMovsBackward(string instruction, int size)
    {
        using var h = new CpuHarness();
        Fill(h, 0x1000, 64);
        h.Execute($"""
                std
                mov si, 0x1000 + 32 - {size}
                mov di, 0x2000 + 32 - {size}
                mov cx, {32 / size}
                rep {instruction}
                cld
                hlt
            """);
        Assert.True(h.Memory.Slice(0x1000, 32).SequenceEqual(h.Memory.Slice(0x2000, 32)));
        Assert.Equal(0, h.Memory[0x1FFF]);
        Assert.Equal((uint)(0x1000 - size), h.Reg(RegisterIndex.Esi));
        Assert.Equal((uint)(0x2000 - size), h.Reg(RegisterIndex.Edi));
    }

    [Fact]
    public void OverlappingRepMovsbCopiesElementByElement()
    {
        // Destination one byte past the source: each byte copied is read again by the next element (a fill).
        using var h = new CpuHarness();
        h.Memory[0x1000] = 0x3C;
        h.Execute("""
                mov si, 0x1000
                mov di, 0x1001
                mov cx, 15
                rep movsb
                hlt
            """);
        Assert.All(h.Memory.Slice(0x1000, 16).ToArray(), b => Assert.Equal(0x3C, b));
    }

    [Fact]
    public void MovsUsesTheSourceOverrideAndAlwaysEsForTheDestination()
    {
        using var h = new CpuHarness();
        h.Memory[0x3010] = 0x5A;
        h.Execute("""
                push word 0x0300
                pop fs                      ; FS base 0x3000
                push word 0x0400
                pop es                      ; ES base 0x4000
                mov si, 0x10
                mov di, 0x20
                fs movsb                    ; 0x3010 -> 0x4020
                mov si, 0x10
                fs lodsb                    ; AL = [0x3010]
                hlt
            """);
        Assert.Equal(0x5A, h.Memory[0x4020]);
        Assert.Equal(0x5Au, h.Reg(RegisterIndex.Eax) & 0xFF);
    }

    [Fact]
    public void RepeCmpsbStopsAtTheFirstMismatch()
    {
        using var h = new CpuHarness().Execute("""
                cld
                mov si, a
                mov di, b
                mov cx, 10
                repe cmpsb
                hlt
            a:  db "abcdefghij"
            b:  db "abcdXfghij"
            """);
        uint a = h.Reg(RegisterIndex.Esi) - 5; // SI and DI are past the mismatch (the 5th byte)
        Assert.Equal(5u, h.Reg(RegisterIndex.Ecx)); // 10 − 5 compared
        Assert.Equal((byte)'e', h.Memory[(int)a + 4]);
        Assert.Equal(h.Reg(RegisterIndex.Esi) + 10, h.Reg(RegisterIndex.Edi));
        Assert.Equal(0u, h.Flags & LazyFlags.ZF);
        Assert.Equal(0u, h.Flags & LazyFlags.CF); // 'e' − 'X': no borrow
    }

    [Fact]
    public void RepeCmpswRunsToTheEndWhenEqual()
    {
        using var h = new CpuHarness().Execute("""
                mov si, a
                mov di, a
                mov cx, 4
                repe cmpsw
                hlt
            a:  dw 1, 2, 3, 4
            """);
        Assert.Equal(0u, h.Reg(RegisterIndex.Ecx));
        Assert.NotEqual(0u, h.Flags & LazyFlags.ZF);
    }

    [Fact]
    public void RepneScasbFindsTheByte()
    {
        using var h = new CpuHarness().Execute("""
                mov di, text
                mov al, 0
                mov cx, 0xFFFF
                repne scasb                 ; strlen
                pushf
                pop si                      ; ZF: found
                not cx
                dec cx
                hlt
            text: db "hello, world", 0
            """);
        Assert.Equal(12u, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
        Assert.NotEqual(0u, h.Reg(RegisterIndex.Esi) & LazyFlags.ZF);
    }

    [Fact]
    public void LodsStosScasWidths()
    {
        using var h = new CpuHarness().Execute("""
                mov dword [0x600], 0x11223344
                mov si, 0x600
                lodsd                       ; EAX = 0x11223344, SI = 0x604
                mov di, 0x700
                stosd
                stosw                       ; 0x3344 at 0x704
                stosb                       ; 0x44 at 0x706
                mov di, 0x700
                scasd                       ; equal: ZF
                hlt
            """);
        Assert.Equal(0x11223344u, h.Reg(RegisterIndex.Eax));
        Assert.Equal(0x604u, h.Reg(RegisterIndex.Esi));
        Assert.Equal(0x704u, h.Reg(RegisterIndex.Edi));
        Assert.Equal(0x11223344u, h.Read32(0x700));
        Assert.Equal(0x3344, h.Read16(0x704));
        Assert.Equal(0x44, h.Memory[0x706]);
        Assert.NotEqual(0u, h.Flags & LazyFlags.ZF);
    }

    [Fact]
    public void RepStosWithCountZeroDoesNothing()
    {
        using var h = new CpuHarness().Execute("""
                mov di, 0x600
                mov al, 0xEE
                xor cx, cx
                cmp al, 0                   ; flags: not equal, CF clear
                rep stosb
                mov cx, 0
                repe cmpsb                  ; no compare: flags stay
                hlt
            """);
        Assert.Equal(0, h.Memory[0x600]);
        Assert.Equal(0x600u, h.Reg(RegisterIndex.Edi));
        Assert.Equal(0u, h.Flags & LazyFlags.ZF);
    }

    [Fact]
    public void AddressSizeSelectsSiDiCxOrEsiEdiEcx()
    {
        using var h = new CpuHarness();
        Fill(h, 0x1000, 16);
        Fill(h, 0x0000, 2);
        h.Execute("""
                mov esi, 0x1000
                mov edi, 0x2000
                mov ecx, 5
                a32 rep movsb               ; ESI/EDI/ECX
                mov [0x600], esi
                mov [0x604], edi
                mov [0x608], ecx
                mov esi, 0x0001FFFE         ; a16: SI = 0xFFFE, wraps to 0x0002
                mov edi, 0x00023000
                mov ecx, 0x00010004         ; CX = 4
                rep movsb
                mov [0x610], esi
                mov [0x614], edi
                mov [0x618], ecx
                hlt
            """);
        Assert.Equal(0x1005u, h.Read32(0x600));
        Assert.Equal(0x2005u, h.Read32(0x604));
        Assert.Equal(0u, h.Read32(0x608));
        Assert.True(h.Memory.Slice(0x1000, 5).SequenceEqual(h.Memory.Slice(0x2000, 5)));
        Assert.Equal(0x0001_0002u, h.Read32(0x610));
        Assert.Equal(0x0002_3004u, h.Read32(0x614));
        Assert.Equal(0x0001_0000u, h.Read32(0x618));
        Assert.Equal(h.Memory[0xFFFE], h.Memory[0x3000]);
        Assert.Equal(h.Memory[0xFFFF], h.Memory[0x3001]);
        Assert.Equal(h.Memory[0x0000], h.Memory[0x3002]);
        Assert.Equal(h.Memory[0x0001], h.Memory[0x3003]);
    }

    [Fact]
    public void UnrealModeA32MovsdBeyondOneMegabyte()
    {
        using var h = new CpuHarness();
        BigLimits(h);
        Fill(h, 0x100000, 0x4000);
        h.Execute("""
                mov esi, 0x100000
                mov edi, 0x180000
                mov ecx, 0x1000
                a32 rep movsd
                hlt
            """);
        Assert.True(h.Memory.Slice(0x100000, 0x4000).SequenceEqual(h.Memory.Slice(0x180000, 0x4000)));
        Assert.Equal(0x104000u, h.Reg(RegisterIndex.Esi));
        Assert.Equal(0x184000u, h.Reg(RegisterIndex.Edi));
    }

    [Fact]
    public void RepMovsLongerThanTheKickIntervalCompletes()
    {
        using var h = new CpuHarness();
        BigLimits(h);
        int count = (Strings.KickInterval * 5) + 3;
        Fill(h, 0x100000, count * 2);
        h.Execute($"""
                mov esi, 0x100000
                mov edi, 0x140000
                mov ecx, {count}
                a32 rep movsw
                hlt
            """);
        Assert.True(h.Memory.Slice(0x100000, count * 2).SequenceEqual(h.Memory.Slice(0x140000, count * 2)));
        Assert.Equal(0u, h.Reg(RegisterIndex.Ecx));
    }

    [Fact]
    public void LongRepLoopLetsAKickThroughAndResumes()
    {
        using var h = new CpuHarness();
        int reads = 0;
        h.PortReadHandler = (port, size) =>
        {
            if (reads++ == 0)
            {
                h.Cpu.Kick();
            }

            return (uint)reads;
        };
        h.Load("""
                mov di, 0x1000
                mov dx, 0x300
                mov cx, 10000
            the_rep:
                rep insb
                hlt
            """);
        Assert.Equal(CpuStop.Kicked, h.Cpu.Run(singleStep: false));
        Assert.Equal(10000u - (uint)Strings.KickInterval, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(CpuHarness.LoadAddress + 9, h.Cpu.Eip); // back on the REP INSB
        h.Cpu.AcknowledgeKick();
        Assert.Equal(CpuStop.Halted, h.Run());
        Assert.Equal(10000, reads);
        Assert.Equal(0u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(1, h.Memory[0x1000]);
        Assert.Equal(10000 & 0xFF, h.Memory[0x1000 + 9999]);
    }

    [Fact]
    public void FaultInsideARepLoopLeavesTheRegistersAtTheFaultingElement()
    {
        using var h = new CpuHarness();
        Fill(h, 0xFFF0, 16);
        h.Execute("""
                mov word [13*4], gp
                mov word [13*4+2], 0
                mov esi, 0xFFFC
                mov edi, 0x500
                mov ecx, 8
                mov bx, fault_at
            fault_at:
                a32 rep movsb               ; the 5th byte is at DS:0x10000, past the limit: #GP
                hlt
            gp: mov bp, sp
                mov dx, [bp]                ; the return IP: the REP MOVSB itself
                hlt
            """);
        Assert.Equal(4u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0x10000u, h.Reg(RegisterIndex.Esi));
        Assert.Equal(0x504u, h.Reg(RegisterIndex.Edi));
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Edx) & 0xFFFF);
        Assert.True(h.Memory.Slice(0xFFFC, 4).SequenceEqual(h.Memory.Slice(0x500, 4)));
    }

    [Fact]
    public void RepInsbAndOutsb()
    {
        using var h = new CpuHarness();
        int next = 0x40;
        h.PortReadHandler = (port, size) => port == 0x300 ? (uint)next++ : 0xFFu;
        h.Execute("""
                mov dx, 0x300
                mov di, 0x600
                mov cx, 4
                rep insb                    ; 0x40 0x41 0x42 0x43
                mov dx, 0xE9
                mov si, text
                mov cx, 5
                rep outsb
                mov si, 0x600
                mov dx, 0x301
                outsw
                hlt
            text: db "hello"
            """);
        Assert.Equal([0x40, 0x41, 0x42, 0x43], h.Memory.Slice(0x600, 4).ToArray());
        Assert.Equal("hello"u8.ToArray(), h.DebugOutput.ToArray());
        Assert.Contains(((ushort)0x301, 0x4140u), h.PortWrites);
    }

    [Fact]
    public void InsdAndRepInsw()
    {
        using var h = new CpuHarness();
        h.PortReadHandler = (port, size) => size == 4 ? 0xDEADBEEF : 0x1234u;
        h.Execute("""
                mov dx, 0x1F0
                mov di, 0x600
                insd
                mov cx, 3
                rep insw
                hlt
            """);
        Assert.Equal(0xDEADBEEFu, h.Read32(0x600));
        Assert.Equal(0x1234, h.Read16(0x604));
        Assert.Equal(0x1234, h.Read16(0x608));
        Assert.Equal(0x60Au, h.Reg(RegisterIndex.Edi));
    }

    [Fact]
    public void RepStosbOverwritingTheNextInstructionTakesEffect()
    {
        using var h = new CpuHarness().Execute("""
                xor ax, ax
                mov di, target
                mov al, 0x90                ; NOP
                mov cx, 3
                rep stosb
            target:
                mov ax, 0x1234              ; 3 bytes, replaced by NOPs before they run
                hlt
            """);
        Assert.Equal(0x90u, h.Reg(RegisterIndex.Eax));
    }

    [Fact]
    public void StoreIntoCodeThatRanBeforeIsSeenTheNextTime()
    {
        using var h = new CpuHarness().Execute("""
                xor bx, bx
                mov cx, 2
            again:
            patch:
                mov ax, 1                   ; B8 01 00; the first pass rewrites the immediate
                add bx, ax
                mov di, patch + 1
                push ax
                mov ax, 0x10
                stosw
                pop ax
                loop again
                hlt
            """);
        Assert.Equal(0x11u, h.Reg(RegisterIndex.Ebx));
    }

    // The bulk path (a page of elements at once) must leave exactly what the element-by-element loop would.

    [Fact]
    public void RepStosdFromAnOddAddressAcrossAPageBoundary()
    {
        using var h = new CpuHarness().Execute("""
                mov di, 0x1FFA              ; the second dword straddles pages 1 and 2
                mov eax, 0x11223344
                mov cx, 4
                rep stosd
                hlt
            """);
        for (uint a = 0x1FFA; a < 0x200A; a += 4)
        {
            Assert.Equal(0x11223344u, h.Read32(a));
        }

        Assert.Equal(0u, h.Read16(0x200A));
        Assert.Equal(0x200Au, h.Reg(RegisterIndex.Edi) & 0xFFFF);
        Assert.Equal(0u, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
    }

    [Fact]
    public void RepStoswWrapsDiWithinTheSegment()
    {
        using var h = new CpuHarness().Execute("""
                mov ax, 0x2000
                mov es, ax
                mov di, 0xFFFC
                mov ax, 0xBEEF
                mov cx, 4
                rep stosw                   ; 0x2FFFC, 0x2FFFE, then DI wraps: 0x20000, 0x20002
                hlt
            """);
        Assert.Equal(0xBEEFu, h.Read16(0x2FFFC));
        Assert.Equal(0xBEEFu, h.Read16(0x2FFFE));
        Assert.Equal(0xBEEFu, h.Read16(0x20000));
        Assert.Equal(0xBEEFu, h.Read16(0x20002));
        Assert.Equal(0u, h.Read16(0x30000));
        Assert.Equal(4u, h.Reg(RegisterIndex.Edi));
    }

    [Fact]
    public void RepeScasdStopsOnTheFirstDifferencePagesAway()
    {
        using var h = new CpuHarness().Execute("""
                mov ax, 0x1000
                mov es, ax
                xor di, di
                mov eax, 0xA5A5A5A5
                mov cx, 2048                ; two pages of dwords
                rep stosd
                mov dword [es:1500*4], 0    ; element 1500, on the second page
                xor di, di
                mov cx, 2048
                repe scasd
                pushf
                pop si
                hlt
            """);
        Assert.Equal(2048u - 1501, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
        Assert.Equal(1501u * 4, h.Reg(RegisterIndex.Edi) & 0xFFFF);
        Assert.Equal(0u, h.Reg(RegisterIndex.Esi) & LazyFlags.ZF);
        Assert.Equal(0u, h.Reg(RegisterIndex.Esi) & LazyFlags.CF);   // the flags of 0xA5A5A5A5 - 0: no borrow
        Assert.NotEqual(0u, h.Reg(RegisterIndex.Esi) & LazyFlags.SF); // and a negative result
    }

    [Fact]
    public void A32RepStosdFaultsOnTheFirstElementPastTheRealModeLimit()
    {
        // Elements at 0xFFF0..0xFFFC fit the 64 KiB limit; the one at 0x10000 raises #GP, through vector 13 here.
        using var h = new CpuHarness().Execute("""
                mov word [13*4], gp
                mov word [13*4+2], 0
                mov edi, 0xFFF0
                mov eax, 0x55667788
                mov ecx, 8
                a32 rep stosd
                mov bx, 1                   ; not reached
                hlt
            gp: hlt
            """);
        Assert.Equal(4u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0x10000u, h.Reg(RegisterIndex.Edi));
        Assert.Equal(0x55667788u, h.Read32(0xFFFC));
        Assert.Equal(0u, h.Read32(0x10000));
        Assert.Equal(0u, h.Reg(RegisterIndex.Ebx) & 0xFFFF);
    }

    /// <summary>A recognizable pattern (never zero) at <paramref name="address"/>.</summary>
    private static void Fill(CpuHarness h, int address, int length)
    {
        for (int k = 0; k < length; k++)
        {
            h.Memory[address + k] = (byte)((k * 7) + 1 + (k >> 8));
            if (h.Memory[address + k] == 0)
            {
                h.Memory[address + k] = 0xA5;
            }
        }
    }

    /// <summary>Unreal mode: DS and ES keep a 4 GiB limit in real mode.</summary>
    private static void BigLimits(CpuHarness h)
    {
        foreach (int seg in (int[])[SegmentIndex.Ds, SegmentIndex.Es])
        {
            h.Cpu.LoadSegmentCache(seg, Segment.RealMode(0) with { Limit = 0xFFFF_FFFF, Granularity = true });
        }
    }
}
