namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>A case whose result under vmm differs from QEMU's.</summary>
/// <param name="Where">Which case of which image, e.g. "image 2/3, case 117".</param>
/// <param name="Case">The case (code and initial state).</param>
/// <param name="Qemu">QEMU's result: the expectation.</param>
/// <param name="Vmm">vmm's result.</param>
/// <param name="Fields">The differing fields (<see cref="CaseComparison.Differences"/>).</param>
public sealed record CaseMismatch(string Where, TestCase Case, CaseOutcome Qemu, CaseOutcome Vmm, IReadOnlyList<string> Fields);
