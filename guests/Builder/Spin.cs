using static Iced.Intel.AssemblerRegisters;
using static Vmm.Guests.RealModeRoutines;

namespace Vmm.Guests;

/// <summary>
/// A guest that is always busy and never exits to the VMM once it has printed its banner,
/// for pause/resume tests: the dword at 0x6000 grows while it runs and freezes while paused.
/// </summary>
public sealed class Spin : IGuest
{
    public const string Output = "spin\r\n";

    public string Name => "spin";

    public string Description =>
        "prints \"spin\", then increments the dword at physical 0x6000 forever; never exits";

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        var a = g.Asm;
        Prologue(g);
        Print(g, Output);
        a.mov(__dword_ptr[Machine.CounterAddress], 0);
        g.Bind("loop");
        a.inc(__dword_ptr[Machine.CounterAddress]);
        a.jmp(g.L("loop"));
    });
}
