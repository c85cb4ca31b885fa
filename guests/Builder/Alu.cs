using static Iced.Intel.AssemblerRegisters;
using static Vmm.Guests.RealModeRoutines;

namespace Vmm.Guests;

/// <summary>
/// The CPU benchmark's register-only workload: a chain of 32-bit ALU instructions in which every flag a later
/// instruction reads comes from the one before it, so neither an interpreter's lazy flags nor a JIT's flag
/// elimination can skip the work.
/// </summary>
/// <remarks>
/// One iteration is <see cref="InstructionsPerIteration"/> instructions (ADD ADC SUB SBB ROL SHR XOR TEST INC DEC
/// JNZ); "B" follows every <see cref="IterationsPerMark"/> iterations, so guest instructions per second =
/// marks per second × <see cref="InstructionsPerMark"/> (the few instructions around each mark are not counted).
/// </remarks>
public sealed class Alu : IGuest
{
    public const int InstructionsPerIteration = 11;
    public const uint IterationsPerMark = 1_000_000;
    public const long InstructionsPerMark = (long)InstructionsPerIteration * IterationsPerMark;

    public string Name => "alu";

    public string Description =>
        $"CPU benchmark: prints \"A\", then forever runs a register-only 32-bit ALU loop with a flag chain, printing \"B\" " +
        $"every {InstructionsPerMark:N0} instructions; never exits";

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        var a = g.Asm;
        Prologue(g);
        PrintChar(g, 'A');
        a.mov(eax, 0x1234_5678);
        a.mov(ebx, 0x9ABC_DEF0);
        a.mov(edx, 0x0F0F_0F0F);
        a.xor(esi, esi);
        a.xor(edi, edi);

        g.Bind("mark");
        a.mov(ecx, IterationsPerMark);
        g.Bind("iteration");
        a.add(eax, ebx);
        a.adc(edx, eax);   // reads ADD's carry
        a.sub(ebx, ecx);
        a.sbb(esi, edx);   // reads SUB's borrow
        a.rol(eax, 3);
        a.shr(edx, 1);
        a.xor(esi, eax);
        a.test(ebx, esi);
        a.inc(edi);
        a.dec(ecx);
        a.jnz(g.L("iteration"));  // reads DEC's zero flag
        PrintChar(g, 'B');
        a.jmp(g.L("mark"));
    });
}
