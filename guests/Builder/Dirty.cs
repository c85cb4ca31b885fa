using static Iced.Intel.AssemblerRegisters;
using static Vmm.Guests.RealModeRoutines;

namespace Vmm.Guests;

/// <summary>
/// The live-migration workload (DESIGN.md §7): dirties every 4 KiB page above 1 MiB, in order,
/// forever, so that a stopped guest's memory can be checked for lost or stale pages.
/// </summary>
/// <remarks>
/// Each pass increments the first byte of every page of [1 MiB, top) in increasing address
/// order, and nothing else in that range is ever written. So at any instant the first bytes
/// of the pages are all equal, except that a prefix may be one ahead of the rest: a run of
/// v+1 followed by a run of v (mod 256). RAM starts zeroed and the probe restores what it
/// touches, so the first pass starts from all zeros. "A" marks the start of the loop, each
/// "B" the end of a pass, so a test can wait for progress on the serial line.
/// </remarks>
public sealed class Dirty : IGuest
{
    public const uint PageSize = 4096;

    public string Name => "dirty";

    public string Description =>
        "migration workload: prints \"A\", then forever increments the first byte of every 4 KiB page " +
        "in [1 MiB, top of RAM) in order, printing \"B\" after each pass; never exits";

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        var a = g.Asm;
        Prologue(g);
        g.Call(EnterUnreal);
        g.Call(ProbeRamTop);
        a.mov(edi, eax);
        PrintChar(g, 'A');

        g.Bind("pass");
        a.mov(esi, Machine.HighMemoryStart);
        a.jmp(g.L("pass.test"));
        g.Bind("pass.page");
        a.inc(__byte_ptr[esi]);
        a.add(esi, PageSize);
        g.Bind("pass.test");
        a.cmp(esi, edi);
        a.jb(g.L("pass.page"));
        PrintChar(g, 'B');
        a.jmp(g.L("pass"));
    });
}
