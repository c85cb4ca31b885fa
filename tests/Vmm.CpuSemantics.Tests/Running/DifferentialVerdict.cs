using Vmm.CpuSemantics.Tests.Harness;

namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>The result of comparing vmm with QEMU over a list of cases.</summary>
/// <param name="Cases">The cases, in order.</param>
/// <param name="Qemu">QEMU's result for each case (null where it has none).</param>
/// <param name="Vmm">vmm's result for each case (null where it has none).</param>
/// <param name="Mismatches">Every case where both have a result and they differ.</param>
/// <param name="RunProblems">Runs that did not end as the harness ends (crash, hang, garbled stream, wrong exit status).</param>
/// <param name="Report">The failure message: run problems, then the mismatches; empty when everything matched.</param>
public sealed record DifferentialVerdict(
    IReadOnlyList<TestCase> Cases,
    IReadOnlyList<CaseOutcome?> Qemu,
    IReadOnlyList<CaseOutcome?> Vmm,
    IReadOnlyList<CaseMismatch> Mismatches,
    IReadOnlyList<string> RunProblems,
    string Report)
{
    public bool Passed => Mismatches.Count == 0 && RunProblems.Count == 0;
}
