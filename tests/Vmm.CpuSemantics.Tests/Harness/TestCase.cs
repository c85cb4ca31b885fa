namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// One differential test case: code (usually one instruction, assembled with Iced) run from a known initial state.
/// </summary>
/// <param name="Form">What is being tested, for reports (e.g. "ADC r/m32, r32").</param>
/// <param name="Code">The bytes the harness runs, 16-bit code.</param>
/// <param name="Kind">Whether the code ends in a branch that the harness records as taken or not.</param>
/// <param name="Initial">Registers, flags, segments and data area before the code runs.</param>
public sealed record TestCase(string Form, byte[] Code, StubKind Kind, CaseState Initial)
{
    /// <summary>
    /// Flags the SDM leaves undefined after this code. They are compared all the same (QEMU's value is the rule the
    /// vmm CPU follows); a report only says so, because real hardware (vmm under KVM) may legitimately differ there.
    /// </summary>
    public uint UndefinedFlags { get; init; }
}
