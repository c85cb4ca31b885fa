using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

/// <summary>The software CPU's view of guest RAM: the dirty log, and code the VMM changes behind it.</summary>
public sealed class MemoryTests
{
    [Fact]
    public void AStoreStraddlingTwoPagesDirtiesBoth()
    {
        using var h = new CpuHarness();
        h.Map.StartDirtyLogging();
        h.Execute("""
            mov dword [0x2FFE], 0xAABBCCDD   ; bytes 0x2FFE-0x3001: pages 2 and 3
            hlt
            """);
        h.Map.SyncDirtyLog();

        Assert.Equal(0xAABBCCDDu, h.Read32(0x2FFE));
        Assert.True(h.Ram.DirtyBitmap.IsSet(2), "first page of the straddling store not dirty");
        Assert.True(h.Ram.DirtyBitmap.IsSet(3), "second page of the straddling store not dirty");
        Assert.False(h.Ram.DirtyBitmap.IsSet(4));
    }

    [Fact]
    public void PushesAndStringStoresAreLoggedAndASecondSyncFindsNothingNew()
    {
        using var h = new CpuHarness();
        h.Map.StartDirtyLogging();
        h.Execute("""
            push ax                     ; the stack page below 0x7C00: page 7
            mov ax, 0x1000
            mov es, ax
            xor di, di
            mov cx, 0x1000
            rep stosb                   ; 0x10000-0x10FFF: page 16
            hlt
            """);
        h.Map.SyncDirtyLog();
        Assert.True(h.Ram.DirtyBitmap.IsSet(7));
        Assert.True(h.Ram.DirtyBitmap.IsSet(0x10));
        Assert.False(h.Ram.DirtyBitmap.IsSet(0x11));

        h.Ram.DirtyBitmap.ClearAll();
        h.Map.SyncDirtyLog();
        Assert.False(h.Ram.DirtyBitmap.IsSet(0x10), "a page was reported twice");
    }

    [Fact]
    public void TheHarvestReportsExactlyTheStoredPagesEightAtATime()
    {
        // Every third page from 64 KiB to 960 KiB: words of the byte map with some bytes set and some
        // not, in every position, harvested eight pages per exchange.
        using var h = new CpuHarness();
        h.Map.StartDirtyLogging();
        h.Execute("""
            mov ax, 0x1000
            next:
            mov es, ax
            mov byte [es:0], 1
            add ax, 0x300               ; three pages on
            cmp ax, 0xF000
            jb next
            hlt
            """);
        h.Map.SyncDirtyLog();
        for (ulong page = 16; page < 512; page++)
        {
            Assert.True((page < 0xF0 && (page - 16) % 3 == 0) == h.Ram.DirtyBitmap.IsSet(page), $"page {page}");
        }

        h.Ram.DirtyBitmap.ClearAll();
        h.Map.SyncDirtyLog();
        Assert.Equal(0ul, h.Ram.DirtyBitmap.CountSet());
    }

    [Fact]
    public void CodeTheVmmRewritesBehindTheCpuIsDecodedAgain()
    {
        using var h = new CpuHarness().Execute("mov ax, 1\nhlt");
        Assert.Equal(1u, h.Reg(RegisterIndex.Eax) & 0xFFFF);

        // The host writes new code where the old ran (as a load or a migration would) and says so.
        byte[] code = Nasm.Assemble("bits 16\nmov ax, 2\nhlt");
        code.CopyTo(h.Memory[(int)CpuHarness.LoadAddress..]);
        h.Map.ContentChanged(h.Ram, CpuHarness.LoadAddress, (ulong)code.Length);
        h.Cpu.Eip = CpuHarness.LoadAddress;
        Assert.Equal(CpuStop.Halted, h.Run());
        Assert.Equal(2u, h.Reg(RegisterIndex.Eax) & 0xFFFF);
    }

    [Fact]
    public void TheMigrationRehearsalRunsItsWarmUpCodeToTheEnd()
    {
        using var ram = new Ram.RamBlockRegistry();
        using var vm = new EmulatorVm(ram);
        vm.RehearseStateTransfer(); // throws if the warm-up code did not halt
    }

    [Fact]
    public void ARemappedPageIsReadAndWrittenAfreshAfterwards()
    {
        using var h = new CpuHarness().Execute("inc dword [0x6000]\nhlt");
        Assert.Equal(1u, h.Read32(0x6000));

        h.Registry.Remap(h.Ram, 0x6000, 0x1000);
        Assert.Equal(0u, h.Read32(0x6000));
        h.Cpu.Eip = CpuHarness.LoadAddress;
        Assert.Equal(CpuStop.Halted, h.Run());
        Assert.Equal(1u, h.Read32(0x6000));
    }

    [Fact]
    public void StoresToReadOnlyPagesAreDroppedOnEveryPathWhileLoadsAndFetchesWork()
    {
        using var h = new CpuHarness();

        // A ROM at F000:0000 (the BIOS's place): far-callable code `mov al, 5Ah; retf`, then a known pattern.
        h.Memory[0xF0000..0x100000].Fill(0x11);
        new byte[] { 0xB0, 0x5A, 0xCB }.CopyTo(h.Memory[0xF0000..]);
        byte[] rom = h.Memory[0xF0000..0x100000].ToArray();
        Assert.True(h.Map.AddReadOnly(h.Ram, 0xF0000, 0x10000));
        h.Map.StartDirtyLogging();

        h.Execute("""
            call 0xF000:0x0000          ; the ROM's code runs (its page now holds decoded code)
            mov bl, al
            mov ax, 0xF000
            mov es, ax
            mov byte [es:0x0000], 0xF4  ; over the code just run
            mov word [es:0x0FFF], 0x2222 ; straddles two ROM pages
            mov dword [es:0xFFFC], 0x44444444
            mov di, 0x0100
            mov cx, 0x2000
            mov al, 0x33
            cld
            rep stosb                   ; the bulk store path, across pages
            mov si, 0x7C00
            mov di, 0x3000
            mov cx, 0x0100
            rep movsb                   ; the bulk copy path
            mov ax, 0xEFFF
            mov ds, ax
            mov dword [0x000E], 0x55555555 ; 0xEFFFE-0xF0001: two bytes of RAM, two of ROM
            xor ax, ax
            mov ds, ax
            mov al, 0
            call 0xF000:0x0000          ; still the original code
            hlt
            """);
        h.Map.SyncDirtyLog();

        Assert.Equal(0x5Au, h.Reg(RegisterIndex.Ebx) & 0xFF);
        Assert.Equal(0x5Au, h.Reg(RegisterIndex.Eax) & 0xFF);
        Assert.True(rom.AsSpan().SequenceEqual(h.Memory[0xF0000..0x100000]), "a guest store reached the ROM");
        Assert.Equal(0x5555, h.Read16(0xEFFFE));
        Assert.True(h.Ram.DirtyBitmap.IsSet(0xEF));
        for (ulong page = 0xF0; page < 0x100; page++)
        {
            Assert.False(h.Ram.DirtyBitmap.IsSet(page), $"ROM page 0x{page:x} logged dirty");
        }

        // The host still writes the ROM (POST, a reset, an incoming migration); the CPU runs what it wrote.
        new byte[] { 0xB0, 0x77, 0xCB }.CopyTo(h.Memory[0xF0000..]);
        h.Map.ContentChanged(h.Ram, 0xF0000, 0x1000);
        h.Cpu.Eip = CpuHarness.LoadAddress;
        h.Execute("""
            call 0xF000:0x0000
            hlt
            """);
        Assert.Equal(0x77u, h.Reg(RegisterIndex.Eax) & 0xFF);
    }
}
