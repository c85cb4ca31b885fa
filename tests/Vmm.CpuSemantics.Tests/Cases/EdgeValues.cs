namespace Vmm.CpuSemantics.Tests.Cases;

/// <summary>Operand values where flags change meaning: 0, 1, the sign boundaries, all-ones, and the nibble edges that decide AF.</summary>
public static class EdgeValues
{
    private static readonly uint[] Candidates =
    [
        0, 1, 2, 0x0F, 0x10, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
    ];

    /// <summary>The edge values that are distinct at <paramref name="width"/> bits.</summary>
    public static IReadOnlyList<uint> For(int width) =>
        Candidates.Select(v => v & OperandWidth.Mask(width)).Distinct().ToList();
}
