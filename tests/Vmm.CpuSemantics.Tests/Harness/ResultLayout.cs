namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// What the harness sends on COM1: a header, then per case the result slot followed by the data area, then a
/// trailer. The slot lives at <see cref="MemoryMap.ResultSlot"/> while the case runs.
/// </summary>
public static class ResultLayout
{
    /// <summary>"CPUSEM01": starts the stream (the reader finds it even if firmware printed something first).</summary>
    public static ReadOnlySpan<byte> HeaderMagic => "CPUSEM01"u8;

    /// <summary>"CPUSEMOK": ends a complete stream.</summary>
    public static ReadOnlySpan<byte> TrailerMagic => "CPUSEMOK"u8;

    /// <summary>Header: magic, case count (u32), data length (u16), slot size (u16).</summary>
    public const int HeaderSize = 16;

    /// <summary>The case index from the record (u32).</summary>
    public const int Index = 0x00;

    /// <summary>The eight registers after the case, <see cref="Gpr"/> order.</summary>
    public const int Registers = 0x04;

    /// <summary>EFLAGS after the case, as PUSHFD stored it.</summary>
    public const int Eflags = 0x24;

    /// <summary>0 when no exception was taken, else vector + 1 (written by the harness's IVT handlers).</summary>
    public const int Exception = 0x28;

    /// <summary>1 when a branch stub took its branch (written by the taken path), else 0.</summary>
    public const int BranchTaken = 0x29;

    /// <summary><see cref="CompletionMarker"/> once the harness stored the state: a case that never finished has 0.</summary>
    public const int Completion = 0x2A;

    public const int SlotSize = 0x2C;

    public const byte CompletionMarker = 0xA5;

    public static int RegisterOffset(Gpr register) => Registers + 4 * (int)register;
}
