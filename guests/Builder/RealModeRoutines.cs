using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Vmm.Guests;

/// <summary>
/// Code shared by the guests: entry prologue, serial output, unreal mode, the RAM probe and
/// the ways to stop. <see cref="Routine"/>s are subroutines (called, emitted once per image
/// after the guest's code); the static methods emit code inline.
/// </summary>
/// <remarks>
/// Calling convention of the routines: arguments in registers as documented, every
/// register is preserved except a documented result. Routines assume DS = 0 (base 0) and
/// a valid stack below 0x7C00, which <see cref="Prologue"/> sets up.
/// </remarks>
public static class RealModeRoutines
{
    /// <summary>putc: writes AL to COM1, waiting for THR to be empty first (a real 16550 drops bytes otherwise).</summary>
    public static readonly Routine Putc = new("putc", g =>
    {
        var a = g.Asm;
        g.Bind("putc");
        a.push(dx);
        a.push(ax);
        a.mov(dx, Machine.Com1Lsr);
        g.Bind("putc.wait");
        a.@in(al, dx);
        a.test(al, Machine.LsrThrEmpty);
        a.jz(g.L("putc.wait"));
        a.pop(ax);
        a.mov(dx, Machine.Com1Data);
        a.@out(dx, al);
        a.pop(dx);
        a.ret();
    });

    /// <summary>puts: writes the NUL-terminated string at DS:SI to COM1.</summary>
    public static readonly Routine Puts = new("puts", g =>
    {
        var a = g.Asm;
        g.Require(Putc);
        g.Bind("puts");
        a.push(ax);
        a.push(si);
        g.Bind("puts.next");
        a.lodsb();
        a.test(al, al);
        a.jz(g.L("puts.done"));
        a.call(g.L("putc"));
        a.jmp(g.L("puts.next"));
        g.Bind("puts.done");
        a.pop(si);
        a.pop(ax);
        a.ret();
    });

    /// <summary>putdec: writes EAX as an unsigned decimal number (no leading zeros) to COM1.</summary>
    public static readonly Routine PutDec = new("putdec", g =>
    {
        var a = g.Asm;
        g.Require(Putc);
        g.Bind("putdec");
        a.pushad();
        a.xor(cx, cx);
        a.mov(ebx, 10);
        // Digits come out least significant first; the stack reverses them.
        g.Bind("putdec.divide");
        a.xor(edx, edx);
        a.div(ebx);
        a.push(dx);
        a.inc(cx);
        a.test(eax, eax);
        a.jnz(g.L("putdec.divide"));
        g.Bind("putdec.emit");
        a.pop(ax);
        a.add(al, (byte)'0');
        a.call(g.L("putc"));
        a.loop(g.L("putdec.emit"));
        a.popad();
        a.ret();
    });

    /// <summary>puthex: writes EAX as exactly 8 upper-case hex digits (no "0x") to COM1.</summary>
    public static readonly Routine PutHex = new("puthex", g =>
    {
        var a = g.Asm;
        g.Require(Putc);
        g.Bind("puthex");
        a.pushad();
        a.mov(ebx, eax);
        a.mov(cx, 8);
        // Rotating left by 4 brings the most significant nibble to the bottom first.
        g.Bind("puthex.digit");
        a.rol(ebx, 4);
        a.mov(al, bl);
        a.and(al, 0x0F);
        a.add(al, (byte)'0');
        a.cmp(al, (byte)'9');
        a.jbe(g.L("puthex.out"));
        a.add(al, (byte)('A' - '9' - 1));
        g.Bind("puthex.out");
        a.call(g.L("putc"));
        a.loop(g.L("puthex.digit"));
        a.popad();
        a.ret();
    });

    /// <summary>
    /// enter_unreal: gives DS, ES, FS and GS a 4 GiB limit while staying in real mode, so that
    /// 32-bit addressed accesses (<c>mov [esi], eax</c>, 0x67 prefix) reach all of RAM.
    /// Selectors and bases end up 0 again, CS is never touched; registers are preserved.
    /// </summary>
    /// <remarks>
    /// A segment register's limit lives in its hidden descriptor cache, which only a load in
    /// protected mode sets from a descriptor; a load in real mode changes only the selector and
    /// base. So: switch PE on, load the flat descriptor, switch PE off, then reload the
    /// registers with 0 (real-mode base 0, the cached 4 GiB limit stays). No far jump is
    /// needed because CS is never reloaded while PE is set: the CPU keeps executing 16-bit
    /// code with CS's real-mode cache. Interrupts must be (and are) off throughout.
    /// </remarks>
    public static readonly Routine EnterUnreal = new("enter_unreal", g =>
    {
        var a = g.Asm;
        g.Bind("enter_unreal");
        a.pushad();
        a.lgdt(__[g.Addr("unreal.gdtr")]);
        a.mov(eax, cr0);
        a.or(al, 1);
        a.mov(cr0, eax);
        a.mov(bx, FlatDataSelector);
        a.mov(ds, bx);
        a.mov(es, bx);
        a.mov(fs, bx);
        a.mov(gs, bx);
        a.and(al, 0xFE);
        a.mov(cr0, eax);
        a.xor(bx, bx);
        a.mov(ds, bx);
        a.mov(es, bx);
        a.mov(fs, bx);
        a.mov(gs, bx);
        a.popad();
        a.ret();

        // GDT: the mandatory null descriptor, then selector 0x08 = flat data:
        // base 0, limit 0xFFFFF in 4 KiB units (G=1) = 4 GiB, D/B=1, present, ring 0,
        // type 0x2 (read/write data). Bytes: FF FF 00 00 00 92 CF 00.
        g.BindData("unreal.gdt");
        a.dd(0u, 0u);
        a.dd(0x0000_FFFFu, 0x00CF_9200u);
        // The pseudo-descriptor lgdt reads: 16-bit limit (size - 1), then the linear base.
        // With a 16-bit operand size lgdt uses only 24 bits of the base, enough below 16 MiB.
        g.BindData("unreal.gdtr");
        a.dw((ushort)(2 * 8 - 1));
        a.dd((uint)g.Addr("unreal.gdt"));
    });

    /// <summary>
    /// probe_ram_top (needs unreal mode): returns in EAX the top of RAM (exclusive), a multiple
    /// of 1 MiB between 1 MiB and 3 GiB. Every other register and all memory are preserved.
    /// </summary>
    /// <remarks>
    /// The VMM offers no way to ask the RAM size, but beyond RAM nothing is backed: reads
    /// return all-ones and writes vanish. So write a signature at each 1 MiB boundary and read
    /// it back; the first boundary where that fails is the top. The signature depends on the
    /// address and is never all-ones, and the old contents are put back, so a guest can probe
    /// after it has written to memory (each probe beyond RAM costs a VM exit, but there is
    /// only one).
    /// </remarks>
    public static readonly Routine ProbeRamTop = new("probe_ram_top", g =>
    {
        var a = g.Asm;
        g.Bind("probe_ram_top");
        a.push(esi);
        a.push(ebx);
        a.push(edx);
        a.mov(esi, Machine.HighMemoryStart);
        g.Bind("probe_ram_top.next");
        a.mov(ebx, __dword_ptr[esi]);
        a.mov(eax, esi);
        // Low 20 bits of the key are 0x55AA5, so the signature can never read as 0xFFFFFFFF.
        a.xor(eax, 0x5AA5_5AA5);
        a.mov(__dword_ptr[esi], eax);
        a.mov(edx, __dword_ptr[esi]);
        a.mov(__dword_ptr[esi], ebx);
        a.cmp(edx, eax);
        a.jne(g.L("probe_ram_top.done"));
        a.add(esi, Machine.ProbeStep);
        a.cmp(esi, Machine.ProbeLimit);
        a.jb(g.L("probe_ram_top.next"));
        g.Bind("probe_ram_top.done");
        a.mov(eax, esi);
        a.pop(edx);
        a.pop(ebx);
        a.pop(esi);
        a.ret();
    });

    /// <summary>Selector of the flat data descriptor in the unreal-mode GDT.</summary>
    private const ushort FlatDataSelector = 0x08;

    /// <summary>
    /// The entry code every guest starts with: interrupts off, CS:IP normalised to 0000:main,
    /// all data segments 0, stack at 0x7C00, string operations counting up. The VMM promises
    /// most of this already; stating it here keeps a guest correct under any loader that uses
    /// the boot-sector convention (some start at 07C0:0000).
    /// </summary>
    public static void Prologue(GuestAssembler g)
    {
        var a = g.Asm;
        a.cli();
        a.AddInstruction(Instruction.CreateBranch(Code.Jmp_ptr1616, 0, g.Addr("main")));
        g.Bind("main");
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(fs, ax);
        a.mov(gs, ax);
        // mov ss holds off interrupts for one instruction, so ss:sp is never half-set.
        a.mov(ss, ax);
        a.mov(sp, Machine.StackTop);
        a.cld();
    }

    /// <summary>Prints <paramref name="text"/> (ASCII) on COM1. Clobbers nothing but SI.</summary>
    public static void Print(GuestAssembler g, string text)
    {
        g.Asm.mov(si, g.Addr(g.Str(text)));
        g.Call(Puts);
    }

    /// <summary>Prints one character on COM1. Clobbers AL.</summary>
    public static void PrintChar(GuestAssembler g, char c)
    {
        g.Asm.mov(al, checked((byte)c));
        g.Call(Putc);
    }

    /// <summary>
    /// The clean exit: HLT with IF=0 makes the VMM power the guest off with status 0. The jump
    /// back only matters under a VMM that resumes after HLT (an NMI, a debugger): stay halted.
    /// </summary>
    public static void PowerOff(GuestAssembler g)
    {
        var a = g.Asm;
        a.cli();
        // The label goes on hlt, not cli, so a caller may bind its own label right before this.
        var halt = a.CreateLabel();
        a.Label(ref halt);
        a.hlt();
        a.jmp(halt);
    }

    /// <summary>Writes <paramref name="value"/> to isa-debug-exit: VMM exit status (value &lt;&lt; 1) | 1.</summary>
    public static void DebugExit(GuestAssembler g, byte value)
    {
        g.Asm.mov(al, value);
        g.Asm.@out(Machine.DebugExitPort, al);
        // Without an isa-debug-exit device the write is ignored. Powering off then would turn
        // a FAIL into status 0, so spin instead: a hang shows up as a test timeout.
        Spin(g);
    }

    /// <summary>Loops forever on a jump to itself (interrupts stay off).</summary>
    public static void Spin(GuestAssembler g)
    {
        // "jmp short $" as raw bytes: a label here would clash with one the caller bound
        // just before (Iced allows one label per instruction).
        g.Asm.db(0xEB, 0xFE);
    }
}
