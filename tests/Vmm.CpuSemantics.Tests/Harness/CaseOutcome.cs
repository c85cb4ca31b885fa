namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>One case's final state as a machine reported it.</summary>
/// <param name="Registers">The eight registers, <see cref="Gpr"/> order.</param>
/// <param name="Eflags">EFLAGS as PUSHFD stored it right after the case.</param>
/// <param name="Exception">The vector of the exception the case raised, or null.</param>
/// <param name="BranchTaken">Whether a branch stub took its branch (always false for plain stubs).</param>
/// <param name="Data">The data area after the case.</param>
public sealed record CaseOutcome(uint[] Registers, uint Eflags, int? Exception, bool BranchTaken, byte[] Data)
{
    public uint this[Gpr register] => Registers[(int)register];
}
