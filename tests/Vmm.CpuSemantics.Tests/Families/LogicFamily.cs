using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>AND, OR, XOR, TEST at 8, 16 and 32 bits in every encoding: CF = OF = 0, SF/ZF/PF from the result, AF undefined.</summary>
public sealed class LogicFamily
{
    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0x1061C);
        return new[] { "And", "Or", "Xor", "Test" }
            .SelectMany(m => BinaryAluCases.For(factory, m, randomCount: 24, undefinedFlags: EFlags.AF))
            .ToList();
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
