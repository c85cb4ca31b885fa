namespace Vmm.Emulator.Processor;

/// <summary>
/// A guest exception raised while executing an instruction (#DE, #UD, #GP, ...). Thrown by the instruction and
/// caught by the execution loop, which puts EIP back on the faulting instruction and delivers it through the IVT or
/// IDT. Instructions check everything that can fault before they change any state, so a fault leaves none behind.
/// </summary>
public sealed class CpuException(byte vector, uint? errorCode = null) : Exception($"guest exception {ExceptionVector.Name(vector)}")
{
    public byte Vector { get; } = vector;

    /// <summary>The error code the vector pushes (#GP, #SS, #NP, #TS, #DF...), or null.</summary>
    public uint? ErrorCode { get; } = errorCode;
}

/// <summary>Exception vectors of the x86.</summary>
public static class ExceptionVector
{
    public const byte DivideError = 0;
    public const byte Debug = 1;
    public const byte Breakpoint = 3;
    public const byte Overflow = 4;
    public const byte BoundRange = 5;
    public const byte InvalidOpcode = 6;
    public const byte DeviceNotAvailable = 7;
    public const byte DoubleFault = 8;
    public const byte InvalidTss = 10;
    public const byte SegmentNotPresent = 11;
    public const byte StackFault = 12;
    public const byte GeneralProtection = 13;

    public static string Name(byte vector) => vector switch
    {
        DivideError => "#DE",
        Debug => "#DB",
        Breakpoint => "#BP",
        Overflow => "#OF",
        BoundRange => "#BR",
        InvalidOpcode => "#UD",
        DeviceNotAvailable => "#NM",
        DoubleFault => "#DF",
        InvalidTss => "#TS",
        SegmentNotPresent => "#NP",
        StackFault => "#SS",
        GeneralProtection => "#GP",
        _ => $"vector {vector}",
    };

    /// <summary>Contributory exceptions: two of them in a row make a double fault (Intel SDM table 6-5).</summary>
    public static bool IsContributory(byte vector) =>
        vector is DivideError or InvalidTss or SegmentNotPresent or StackFault or GeneralProtection;
}
