using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>SHL, SAL (the /6 alias too), SHR, SAR at 8, 16 and 32 bits by 1, CL and imm8, counts 0 to 255.</summary>
public sealed class ShiftFamily
{
    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0x5417);
        return new[] { "Shl", "Shr", "Sar" }.SelectMany(m => ShiftCases.For(factory, m, valuesPerCount: 8))
            .Concat(ShiftCases.For(factory, "Sal", valuesPerCount: 2))
            .ToList();
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
