using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

/// <summary>
/// A rotate whose flags the next instruction overwrites skips computing them (Decoding.FlagLiveness): the flags after
/// the pair are still exact, and single-stepping onto the rotate alone still shows the rotate's own CF and OF.
/// </summary>
public sealed class FlagLivenessTests
{
    // ADD sets C P A Z (0xFF + 1); ROL by 1 of 0x80000001 gives CF = 1, OF = 1, keeping P A Z; SHR then sets its own.
    private const string Pair = "mov eax, 0x80000001\nmov ebx, 0xff\nadd bl, 1\nrol eax, 1\nshr ebx, 1";

    [Fact]
    public void FlagsAfterTheOverwritingInstructionAreExact() =>
        FlagSnippet.Check(Pair, "", "eax=00000003 ebx=00000000", "PZ");

    [Fact]
    public void SingleSteppingOntoTheRotateShowsItsOwnFlags()
    {
        using var h = new CpuHarness();
        h.Load(Pair + "\nhlt");
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(CpuStop.Stepped, h.Cpu.Run(singleStep: true));
        }

        Assert.Equal(3u, FlagSnippet.RegisterValue(h, "eax"));
        Assert.Equal(
            FlagSnippet.Format(LazyFlags.CF | LazyFlags.PF | LazyFlags.AF | LazyFlags.ZF | LazyFlags.OF),
            FlagSnippet.Format(h.Flags & LazyFlags.ArithmeticMask));
    }

    [Fact]
    public void TheWholeBlockStillGivesTheRotatesResult()
    {
        using CpuHarness h = FlagSnippet.Run(Pair, "");
        Assert.Equal(3u, FlagSnippet.RegisterValue(h, "eax"));
    }
}
