using static Iced.Intel.AssemblerRegisters;
using static Vmm.Guests.RealModeRoutines;

namespace Vmm.Guests;

/// <summary>
/// Watches the RAM layout change under it: before every pass it probes the top of RAM again,
/// reports it and what lies just beyond it, then dirties every page below it, so a test can
/// grow, shrink and punch holes in RAM while it runs and see both what the guest sees and
/// what the dirty log records.
/// </summary>
/// <remarks>
/// Each pass: <c>ProbeRamTop</c> (the first 1 MiB boundary above 1 MiB that does not hold
/// what is written there), then a write of <see cref="BeyondMarker"/> to the dword at the top
/// and a read back of it, then the line <c>top N MiB, beyond XXXXXXXX\r\n</c> (N decimal, the
/// read-back in 8 hex digits: <c>FFFFFFFF</c> when the VMM reads all-ones and ignores writes
/// beyond RAM), then <c>inc byte</c> on the first byte of every 4 KiB page of [1 MiB, top) in
/// increasing order. The probe restores what it touches; the marker goes only where there is
/// no RAM, so the first bytes below the top are changed by the increments alone.
/// </remarks>
public sealed class RamTop : IGuest
{
    public const string Banner = "ram-top\r\n";

    /// <summary>Written to the first dword beyond the top of RAM every pass; never reads back under a correct VMM.</summary>
    public const uint BeyondMarker = 0x0BAD_C0DE;

    public const uint PageSize = 4096;

    public string Name => "ram-top";

    public string Description =>
        "prints \"ram-top\", then forever: probes the top of RAM, prints \"top N MiB, beyond XXXXXXXX\" " +
        "(the dword at the top after writing 0x0BADC0DE there), and increments the first byte of every " +
        "4 KiB page below the top; never exits";

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        var a = g.Asm;
        Prologue(g);
        g.Call(EnterUnreal);
        Print(g, Banner);

        g.Bind("pass");
        g.Call(ProbeRamTop);
        // EDI = top of RAM for this pass (Print clobbers SI only; the routines keep the rest).
        a.mov(edi, eax);
        a.mov(__dword_ptr[edi], BeyondMarker);
        a.mov(edx, __dword_ptr[edi]);

        Print(g, "top ");
        a.shr(eax, 20);
        g.Call(PutDec);
        Print(g, " MiB, beyond ");
        a.mov(eax, edx);
        g.Call(PutHex);
        Print(g, "\r\n");

        a.mov(esi, Machine.HighMemoryStart);
        a.jmp(g.L("pass.test"));
        g.Bind("pass.page");
        a.inc(__byte_ptr[esi]);
        a.add(esi, PageSize);
        g.Bind("pass.test");
        a.cmp(esi, edi);
        a.jb(g.L("pass.page"));
        a.jmp(g.L("pass"));
    });
}
