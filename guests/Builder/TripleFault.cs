using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using static Vmm.Guests.RealModeRoutines;

namespace Vmm.Guests;

/// <summary>Makes the CPU shut down, to test the VMM's triple-fault diagnostic and exit status.</summary>
/// <remarks>
/// With an IDT limit of 0 no exception can be delivered: #UD (vector 6) is beyond the limit,
/// so #GP; vector 13 is beyond it too, so #DF; vector 8 as well: triple fault, i.e. shutdown
/// (KVM_EXIT_SHUTDOWN).
/// <para>
/// This is done in (16-bit) protected mode, not real mode. In real mode the IDTR limit also
/// bounds the vector table on hardware, so <c>lidt</c> limit 0 + <c>int3</c> would do, but KVM
/// runs real-mode code in its instruction emulator on hosts without unrestricted-guest
/// support, including the PVM nested KVM of the build machines, and that emulator ignores the
/// limit ("TODO: Add limit checks" in __emulate_int_real): int3 then jumps through the vector
/// at 0000:000C. It does not even fault on a push across the stack limit with SP = 1, since
/// exceptions are injected without limit checks. Measured there: real mode int3 with limit 0
/// is delivered; protected-mode int3 stops with KVM_EXIT_INTERNAL_ERROR (the emulator does not
/// implement protected-mode INT); protected-mode ud2 shuts down, as on hardware.
/// </para>
/// </remarks>
public sealed class TripleFault : IGuest
{
    public const string Output = "triple-fault: going down\r\n";

    public string Name => "triple-fault";

    public string Description =>
        "prints \"triple-fault: going down\", then ud2 in protected mode with an IDT limit of 0: " +
        "triple fault (VMM diagnostic, non-zero status)";

    private const ushort CodeSelector = 0x08;
    private const ushort DataSelector = 0x10;

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        var a = g.Asm;
        Prologue(g);
        Print(g, Output);

        a.lgdt(__[g.Addr("tf.gdtr")]);
        a.lidt(__[g.Addr("tf.idtr")]);
        a.mov(eax, cr0);
        a.or(al, 1);
        a.mov(cr0, eax);
        // A proper protected-mode CS (16-bit, so this 16-bit assembler's code stays valid),
        // so the VMM's diagnostic shows a coherent state: CS = 0x08, IP at the ud2.
        a.AddInstruction(Instruction.CreateBranch(Code.Jmp_ptr1616, CodeSelector, g.Addr("protected")));
        g.Bind("protected");
        a.mov(ax, DataSelector);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.ud2();
        // Not reached: the CPU is in shutdown. Should a VMM resume it anyway, stay put.
        Spin(g);

        // null; 0x08: 16-bit code, base 0, limit 0xFFFF, present, ring 0, execute/read;
        // 0x10: 16-bit data, base 0, limit 0xFFFF, read/write.
        g.BindData("tf.gdt");
        a.dd(0u, 0u);
        a.dd(0x0000_FFFFu, 0x0000_9A00u);
        a.dd(0x0000_FFFFu, 0x0000_9200u);
        g.BindData("tf.gdtr");
        a.dw((ushort)(3 * 8 - 1));
        a.dd((uint)g.Addr("tf.gdt"));
        // Limit 0, base 0: no vector fits.
        g.BindData("tf.idtr");
        a.dw(0);
        a.dd(0);
    });
}
