using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>
/// ROL, ROR, RCL, RCR at 8, 16 and 32 bits by 1, CL and imm8, counts 0 to 255 (RCL/RCR rotate through CF: modulo 9
/// and 17 at 8 and 16 bits).
/// </summary>
public sealed class RotateFamily
{
    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0x7074);
        return new[] { "Rol", "Ror", "Rcl", "Rcr" }.SelectMany(m => ShiftCases.For(factory, m, valuesPerCount: 8)).ToList();
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
