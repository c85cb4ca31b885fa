using static Iced.Intel.AssemblerRegisters;
using static Vmm.Guests.RealModeRoutines;

namespace Vmm.Guests;

/// <summary>
/// The interrupt-rate benchmark's workload, for the bare machine (--bios none): programs the master PIC itself
/// (vector <see cref="Vector"/>, only IRQ 0 unmasked) and PIT channel 0 in mode 2 at about 100 kHz, then sleeps in
/// <c>sti; hlt</c>; its IRQ 0 handler counts in the dword at <see cref="Machine.CounterAddress"/>, EOIs, and prints
/// "I" every <see cref="InterruptsPerMark"/> interrupts. Interrupts a second = marks a second ×
/// <see cref="InterruptsPerMark"/>. The rate is above what either accelerator (or QEMU's TCG) delivers here — at 50 kHz
/// the software CPU kept up on a quiet host, which would measure the PIT rather than the delivery path — so the figure
/// is the delivery path's ceiling (a tick the VMM cannot deliver in time is merged into the next, never queued).
/// </summary>
public sealed class IrqRate : IGuest
{
    /// <summary>PIT channel 0's count: 1.193182 MHz / 12 = 99.4 kHz.</summary>
    public const ushort PitReload = 12;

    public const uint InterruptsPerMark = 1000;

    /// <summary>Where the guest puts IRQ 0 (the BIOS's 08h would do, but a guest that programs the PIC picks its own).</summary>
    public const byte Vector = 0x20;

    /// <summary>The word the handler counts down to the next mark.</summary>
    private const ushort MarkCountdown = Machine.CounterAddress + 4;

    public static double ProgrammedHz => 1_193_182.0 / PitReload;

    public string Name => "irq-rate";

    public string Description =>
        $"interrupt-rate benchmark (bare machine): programs the PIC and PIT channel 0 at {ProgrammedHz / 1000:F1} kHz, counts " +
        $"IRQ 0 at 0x6000 with sti; hlt between them, prints \"I\" every {InterruptsPerMark} interrupts; never exits";

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        var a = g.Asm;
        Prologue(g);
        Print(g, "irq-rate\r\n");
        a.xor(eax, eax);
        a.mov(__dword_ptr[Machine.CounterAddress], eax);
        a.mov(__word_ptr[MarkCountdown], (ushort)InterruptsPerMark);
        a.mov(__word_ptr[Vector * 4], g.Addr("irq0"));
        a.mov(__word_ptr[(Vector * 4) + 2], ax);

        // ICW1 (edge, cascade, ICW4), ICW2 (vector base), ICW3 (slave on IRQ 2), ICW4 (8086 mode); mask all but IRQ 0.
        foreach ((byte port, byte value) in new (byte, byte)[] { (0x20, 0x11), (0x21, Vector), (0x21, 0x04), (0x21, 0x01), (0x21, 0xFE) })
        {
            a.mov(al, value);
            a.@out(port, al);
        }

        // Channel 0, low then high byte, mode 2 (rate generator).
        a.mov(al, 0x34);
        a.@out(0x43, al);
        a.mov(al, (byte)PitReload);
        a.@out(0x40, al);
        a.mov(al, (byte)(PitReload >> 8));
        a.@out(0x40, al);

        a.sti();
        g.Bind("sleep");
        a.hlt();
        a.jmp(g.L("sleep"));

        // DS is 0 everywhere in this guest, so the handler needs no segment of its own.
        g.Bind("irq0");
        a.push(ax);
        a.inc(__dword_ptr[Machine.CounterAddress]);
        a.dec(__word_ptr[MarkCountdown]);
        a.jnz(g.L("eoi"));
        a.mov(__word_ptr[MarkCountdown], (ushort)InterruptsPerMark);
        a.push(dx);
        a.mov(al, (byte)'I');
        a.mov(dx, Machine.Com1Data);
        a.@out(dx, al);
        a.pop(dx);
        g.Bind("eoi");
        a.mov(al, 0x20);
        a.@out(0x20, al);
        a.pop(ax);
        a.iret();
    });
}
