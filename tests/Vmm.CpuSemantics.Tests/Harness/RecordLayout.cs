namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// A case record in the image: the case's whole initial state, read by the harness through FS (FS = the record's
/// paragraph, so every field has a constant offset and loading the eight registers needs none of them).
/// </summary>
public static class RecordLayout
{
    /// <summary>The eight registers, <see cref="Gpr"/> order, 4 bytes each.</summary>
    public const int Registers = 0x00;

    public const int Eflags = 0x20;
    public const int Ds = 0x24;
    public const int Es = 0x26;
    public const int Ss = 0x28;

    /// <summary>Offset (in CS = 0) of the stub that holds the instruction under test.</summary>
    public const int Stub = 0x2A;

    /// <summary>The case's number in its image, copied into its result so the reader can tell a skipped case.</summary>
    public const int Index = 0x2C;

    /// <summary>The initial contents of the data area (the batch's data length).</summary>
    public const int Data = 0x30;

    /// <summary>Records are paragraph-aligned so that FS can point at each one.</summary>
    public static int Stride(int dataLength) => (Data + dataLength + 15) & ~15;

    public static int RegisterOffset(Gpr register) => Registers + 4 * (int)register;
}
