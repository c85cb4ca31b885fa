using static Iced.Intel.AssemblerRegisters;
using static Vmm.Guests.RealModeRoutines;

namespace Vmm.Guests;

/// <summary>
/// Checks that the TSC never goes backwards, across pauses and migrations (the VMM must save
/// and restore it). Counts loop iterations in the dword at 0x6000 and keeps the last TSC it
/// read at 0x6008 (8 bytes), both in guest RAM where tests can read them.
/// </summary>
public sealed class TscCounter : IGuest
{
    public const byte BackwardsExitValue = 0x12;

    /// <summary>"C" is printed every 2^20 iterations.</summary>
    public const uint ProgressMask = (1u << 20) - 1;

    public string Name => "tsc-counter";

    public string Description =>
        "reads the TSC in a loop; prints \"C\" every 2^20 iterations; if it ever goes backwards prints \"T\" " +
        "and exits with status 37";

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        var a = g.Asm;
        const ushort lastLow = Machine.LastTscAddress;
        const ushort lastHigh = Machine.LastTscAddress + 4;

        Prologue(g);
        a.xor(eax, eax);
        a.mov(__dword_ptr[Machine.CounterAddress], eax);
        a.mov(__dword_ptr[lastLow], eax);
        a.mov(__dword_ptr[lastHigh], eax);

        g.Bind("loop");
        a.rdtsc();
        // 64-bit unsigned compare of EDX:EAX with the saved value: high halves decide unless equal.
        a.cmp(edx, __dword_ptr[lastHigh]);
        a.jb(g.L("backwards"));
        a.ja(g.L("store"));
        a.cmp(eax, __dword_ptr[lastLow]);
        a.jb(g.L("backwards"));
        g.Bind("store");
        a.mov(__dword_ptr[lastLow], eax);
        a.mov(__dword_ptr[lastHigh], edx);
        a.inc(__dword_ptr[Machine.CounterAddress]);
        a.test(__dword_ptr[Machine.CounterAddress], ProgressMask);
        a.jnz(g.L("loop"));
        PrintChar(g, 'C');
        a.jmp(g.L("loop"));

        g.Bind("backwards");
        PrintChar(g, 'T');
        DebugExit(g, BackwardsExitValue);
    });
}
