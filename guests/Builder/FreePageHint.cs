using static Iced.Intel.AssemblerRegisters;
using static Vmm.Guests.RealModeRoutines;

namespace Vmm.Guests;

/// <summary>
/// The free-page-hint workload: the dirty-16m loop, plus a 32 MiB region it never writes after boot and reports as
/// free whenever the VMM asks (the free-page-hint device), while checking a little of it every pass.
/// </summary>
/// <remarks>
/// <para>
/// At boot the first dword of every page of the free region [17 MiB, 49 MiB) (capped at the top of RAM) is set to
/// the page's own address; nothing writes there again. Then, forever: one dirty pass over [1 MiB, 17 MiB) exactly as
/// dirty-16m (so the dirty consistency check applies to that range); if STATUS (port 0x5A0) is non-zero and differs
/// from the last id answered, report the free region as hints of at most 4 MiB each and remember the id; then read
/// the next 64 pages of the free region (a cursor that wraps, so over time every page is read) and check each first
/// dword; print "B".
/// </para>
/// <para>
/// The point is what a migration must not do with a hint: the region really is unused by the guest's logic, but its
/// content is still the guest's memory. A VMM that drops hinted pages instead of only putting them off hands the
/// guest zero pages on the destination, and the check finds them.
/// </para>
/// </remarks>
public sealed class FreePageHint : IGuest
{
    public const uint PageSize = 4096;

    /// <summary>The dirty range is [1 MiB, 1 MiB + this).</summary>
    public const uint DirtyBytes = 16 << 20;

    /// <summary>The free region starts right after the dirty range.</summary>
    public const uint FreeStart = Machine.HighMemoryStart + DirtyBytes;

    public const uint FreeBytes = 32 << 20;

    public const uint FreeEnd = FreeStart + FreeBytes;

    /// <summary>The free region is reported as several hints of at most this many bytes.</summary>
    public const uint HintBytes = 4 << 20;

    /// <summary>Free-region pages read and checked after each dirty pass.</summary>
    public const ushort CheckedPagesPerPass = 64;

    /// <summary>The dword where the guest keeps the last request id it answered.</summary>
    public const ushort LastRequestIdAddress = 0x6010;

    /// <summary>On a mismatch: the address of the page whose first dword was wrong (0 otherwise).</summary>
    public const ushort MismatchAddress = 0x6014;

    /// <summary>Written to isa-debug-exit after printing "X" on a mismatch: exit status 39.</summary>
    public const byte MismatchExitValue = 0x13;

    public string Name => "free-page-hint";

    public string Description =>
        "migration workload: dirty-16m's loop, plus a 32 MiB region from 17 MiB that it reports as free on every new " +
        "free-page-hint request and checks 64 pages of per pass; a bad page prints \"X\" and exits with status 39";

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        var a = g.Asm;
        Prologue(g);
        g.Call(EnterUnreal);
        g.Call(ProbeRamTop);

        // EDI = end of the dirty range = min(top, 17 MiB); EBP = end of the free region = min(top, 49 MiB), and
        // never below its start, so a small RAM gives an empty free region rather than a negative one.
        a.mov(edi, FreeStart);
        a.cmp(eax, edi);
        a.jae(g.L("dirty.capped"));
        a.mov(edi, eax);
        g.Bind("dirty.capped");
        a.mov(ebp, FreeEnd);
        a.cmp(eax, ebp);
        a.jae(g.L("free.capped"));
        a.mov(ebp, eax);
        g.Bind("free.capped");
        a.cmp(ebp, FreeStart);
        a.jae(g.L("free.sized"));
        a.mov(ebp, FreeStart);
        g.Bind("free.sized");

        // Fill: the first dword of each free page is its address.
        a.mov(edx, FreeStart);
        a.jmp(g.L("fill.test"));
        g.Bind("fill.page");
        a.mov(__dword_ptr[edx], edx);
        a.add(edx, PageSize);
        g.Bind("fill.test");
        a.cmp(edx, ebp);
        a.jb(g.L("fill.page"));

        a.xor(eax, eax);
        a.mov(__dword_ptr[LastRequestIdAddress], eax);
        a.mov(__dword_ptr[MismatchAddress], eax);

        // EBX: the next free page to check, for the whole run.
        a.mov(ebx, FreeStart);
        PrintChar(g, 'A');

        // The dirty pass, as in dirty-16m: only the first byte of each page of [1 MiB, EDI) ever changes.
        g.Bind("pass");
        a.mov(esi, Machine.HighMemoryStart);
        a.jmp(g.L("pass.test"));
        g.Bind("pass.page");
        a.inc(__byte_ptr[esi]);
        a.add(esi, PageSize);
        g.Bind("pass.test");
        a.cmp(esi, edi);
        a.jb(g.L("pass.page"));

        // Answer a new request once: STATUS 0 means nobody asks, the same id means already answered.
        a.mov(dx, Machine.FreePageHintStatusOrBase);
        a.@in(eax, dx);
        a.test(eax, eax);
        a.jz(g.L("check"));
        a.cmp(eax, __dword_ptr[LastRequestIdAddress]);
        a.je(g.L("check"));
        a.mov(__dword_ptr[LastRequestIdAddress], eax);
        a.mov(esi, FreeStart);
        a.jmp(g.L("hint.test"));
        g.Bind("hint.range");
        a.mov(eax, esi);
        a.mov(dx, Machine.FreePageHintStatusOrBase);
        a.@out(dx, eax);
        a.mov(eax, ebp);
        a.sub(eax, esi);
        a.cmp(eax, HintBytes);
        a.jbe(g.L("hint.length"));
        a.mov(eax, HintBytes);
        g.Bind("hint.length");
        a.mov(dx, Machine.FreePageHintLength);
        a.@out(dx, eax);
        a.add(esi, HintBytes);
        g.Bind("hint.test");
        a.cmp(esi, ebp);
        a.jb(g.L("hint.range"));

        // Check the next pages of the free region, wrapping at its end (an empty region checks nothing).
        g.Bind("check");
        a.mov(cx, CheckedPagesPerPass);
        g.Bind("check.page");
        a.cmp(ebx, ebp);
        a.jb(g.L("check.read"));
        a.mov(ebx, FreeStart);
        a.cmp(ebx, ebp);
        a.jae(g.L("check.done"));
        g.Bind("check.read");
        a.cmp(__dword_ptr[ebx], ebx);
        a.jne(g.L("mismatch"));
        a.add(ebx, PageSize);
        a.loop(g.L("check.page"));
        g.Bind("check.done");
        PrintChar(g, 'B');
        a.jmp(g.L("pass"));

        g.Bind("mismatch");
        a.mov(__dword_ptr[MismatchAddress], ebx);
        PrintChar(g, 'X');
        DebugExit(g, MismatchExitValue);
    });
}
