using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>ADD, ADC, SUB, SBB, CMP at 8, 16 and 32 bits in every encoding: results and all six flags (CF in and out).</summary>
public sealed class AddSubtractFamily
{
    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0x5AD0);
        return new[] { "Add", "Adc", "Sub", "Sbb", "Cmp" }.SelectMany(m => BinaryAluCases.For(factory, m, randomCount: 24)).ToList();
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
