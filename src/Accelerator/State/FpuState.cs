namespace Vmm.Accelerator.State;

/// <summary>x87 and SSE state (KVM's kvm_fpu). The software CPU keeps it without computing with it.</summary>
public sealed record FpuState
{
    /// <summary>FCW after FNINIT: all exceptions masked, 64-bit precision, round to nearest.</summary>
    public const ushort InitialControlWord = 0x037F;

    /// <summary>MXCSR after reset: all SSE exceptions masked.</summary>
    public const uint InitialMxcsr = 0x1F80;

    /// <summary>ST0–ST7, 16 bytes each (80-bit values, padded).</summary>
    public byte[] Registers { get; init; } = new byte[128];

    public ushort ControlWord { get; init; } = InitialControlWord;

    public ushort StatusWord { get; init; }

    /// <summary>The abridged tag word (one bit per register, 1 = valid), as FXSAVE stores it.</summary>
    public byte AbridgedTagWord { get; init; }

    public ushort LastOpcode { get; init; }

    public ulong LastInstructionPointer { get; init; }

    public ulong LastDataPointer { get; init; }

    /// <summary>XMM0–XMM15, 16 bytes each.</summary>
    public byte[] Xmm { get; init; } = new byte[256];

    public uint Mxcsr { get; init; } = InitialMxcsr;
}
