using System.Runtime.CompilerServices;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// Where an operand lives, as a type: the first or second register operand of the decoded instruction, its memory
/// operand, or its immediate. Handlers are generic over it, like over <see cref="IWidth"/>.
/// </summary>
public interface IOperand
{
    static abstract uint Read<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth;

    static abstract void Write<TW>(Cpu cpu, ref DecodedInstruction d, uint value)
        where TW : IWidth;
}

/// <summary>The register in <see cref="DecodedInstruction.R0"/>.</summary>
public readonly struct Reg0 : IOperand
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Read<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth => TW.GetReg(cpu, d.R0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write<TW>(Cpu cpu, ref DecodedInstruction d, uint value)
        where TW : IWidth => TW.SetReg(cpu, d.R0, value);
}

/// <summary>The register in <see cref="DecodedInstruction.R1"/>.</summary>
public readonly struct Reg1 : IOperand
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Read<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth => TW.GetReg(cpu, d.R1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write<TW>(Cpu cpu, ref DecodedInstruction d, uint value)
        where TW : IWidth => TW.SetReg(cpu, d.R1, value);
}

/// <summary>The memory operand: segment <see cref="DecodedInstruction.Segment"/>, offset from <see cref="Cpu.Address"/>.</summary>
public readonly struct Mem : IOperand
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Read<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth => TW.Read(cpu, d.Segment, cpu.Address(ref d));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write<TW>(Cpu cpu, ref DecodedInstruction d, uint value)
        where TW : IWidth => TW.Write(cpu, d.Segment, cpu.Address(ref d), value);
}

/// <summary>The immediate (already extended to the operand width by the decoder).</summary>
public readonly struct Imm : IOperand
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Read<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth => d.Imm;

    public static void Write<TW>(Cpu cpu, ref DecodedInstruction d, uint value)
        where TW : IWidth => throw new InvalidOperationException("an immediate is not writable");
}
