using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using Vmm.CpuSemantics.Tests.Running;

namespace Vmm.CpuSemantics.Tests.Families;

/// <summary>
/// BSWAP r32 (and r16, undefined in the SDM: QEMU swaps all 32 bits), XADD and CMPXCHG at 8, 16 and 32 bits with a
/// register or memory destination (CMPXCHG both with the accumulator equal to the destination and not), and XCHG.
/// </summary>
public sealed class ExchangeFamily
{
    public static IEnumerable<TestCase> Cases()
    {
        var factory = new CaseFactory(seed: 0x8C6);
        var cases = new List<TestCase>();
        for (var i = 0; i < 120; i++)
        {
            var c = factory.Begin();
            cases.Add(c.Build(Codes.Get("Bswap_r32"), c.Reg(32, factory.NextUInt())));
        }

        for (var i = 0; i < 16; i++)
        {
            var c = factory.Begin();
            cases.Add(c.Build(Codes.Get("Bswap_r16"), c.Reg(16, factory.NextUInt())) with { Form = "Bswap_r16 (undefined)" });
        }

        foreach (var width in OperandWidth.All)
        {
            foreach (var (a, b) in factory.Pairs(width, randomCount: 16))
            {
                var xadd = factory.Begin();
                var destination = xadd.RegOrMem(width, a, memoryOneIn: 2);
                cases.Add(xadd.Build(Codes.Get($"Xadd_rm{width}_r{width}"), destination, xadd.Reg(width, b)));

                // CMPXCHG: compare the accumulator with the destination; equal half of the time.
                var cmpxchg = factory.Begin();
                var accumulator = factory.NextBool() ? a : b;
                cmpxchg.Fixed(OperandWidth.Accumulator(width), accumulator);
                var target = cmpxchg.RegOrMem(width, a, memoryOneIn: 2);
                cases.Add(cmpxchg.Build(Codes.Get($"Cmpxchg_rm{width}_r{width}"), target, cmpxchg.Reg(width, factory.Interesting(width))));

                var xchg = factory.Begin();
                if (width != 8 && factory.Next(3) == 0)
                {
                    // The one-byte form 0x90+r exchanges with AX/EAX.
                    xchg.Fixed(OperandWidth.Accumulator(width), a);
                    var other = xchg.Reg(width, b);
                    cases.Add(xchg.Build(Codes.Get($"Xchg_r{width}_{(width == 16 ? "AX" : "EAX")}"), other, OperandWidth.Accumulator(width)));
                }
                else
                {
                    var left = xchg.RegOrMem(width, a, memoryOneIn: 2);
                    cases.Add(xchg.Build(Codes.Get($"Xchg_rm{width}_r{width}"), left, xchg.Reg(width, b)));
                }
            }
        }

        return cases;
    }

    [Fact]
    public void MatchesQemu() => DifferentialHarness.AssertSameAsQemu(Cases());
}
