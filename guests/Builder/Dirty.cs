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
/// <param name="rangeMiB">
/// How many MiB above 1 MiB to dirty (capped at the top of RAM), or null for all of RAM: the variants dirty-16m and
/// dirty-256m let a migration test move a big guest that dirties only part of its memory.
/// </param>
public sealed class Dirty(uint? rangeMiB = null) : IGuest
{
    public const uint PageSize = 4096;

    public string Name => rangeMiB is { } mib ? $"dirty-{mib}m" : "dirty";

    public string Description => rangeMiB is { } mib
        ? $"migration workload: as dirty, over [1 MiB, 1 MiB + {mib} MiB) only (capped at the top of RAM)"
        : "migration workload: prints \"A\", then forever increments the first byte of every 4 KiB page " +
          "in [1 MiB, top of RAM) in order, printing \"B\" after each pass; never exits";

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        var a = g.Asm;
        Prologue(g);
        g.Call(EnterUnreal);
        g.Call(ProbeRamTop);
        a.mov(edi, eax);
        if (rangeMiB is { } mib)
        {
            // End of the range = min(top of RAM, 1 MiB + range).
            a.mov(eax, Machine.HighMemoryStart + (mib << 20));
            a.cmp(eax, edi);
            a.jae(g.L("range.capped"));
            a.mov(edi, eax);
            g.Bind("range.capped");
        }

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
