using Iced.Intel;
using IcedCode = Iced.Intel.Code;

namespace Vmm.CpuSemantics.Tests.Cases;

/// <summary>
/// A register, memory or immediate operand, so that generators can build any form of an instruction through one call
/// (<see cref="Create"/>) instead of choosing among Iced's overloads by hand.
/// </summary>
public readonly record struct Operand(Register Register, MemoryOperand? Memory, long? Immediate)
{
    public bool IsMemory => Memory is not null;

    public static implicit operator Operand(Register register) => new(register, null, null);

    public static implicit operator Operand(MemoryOperand memory) => new(Register.None, memory, null);

    /// <summary>An immediate; negative values are for sign-extended (imm8) forms, which Iced takes as signed.</summary>
    public static Operand Imm(long value) => new(Register.None, null, value);

    /// <summary>The instruction <paramref name="code"/> with these operands, in Iced's operand order.</summary>
    public static Instruction Create(IcedCode code, params Operand[] operands) => operands switch
    {
        [] => Instruction.Create(code),
        [var a] when a.IsMemory => Instruction.Create(code, a.Memory!.Value),
        [{ Immediate: { } i }] => i < 0 ? Instruction.Create(code, (int)i) : Instruction.Create(code, (uint)i),
        [var a] => Instruction.Create(code, a.Register),
        [var a, { Immediate: { } i }] when a.IsMemory => i < 0 ? Instruction.Create(code, a.Memory!.Value, (int)i) : Instruction.Create(code, a.Memory!.Value, (uint)i),
        [var a, { Immediate: { } i }] => i < 0 ? Instruction.Create(code, a.Register, (int)i) : Instruction.Create(code, a.Register, (uint)i),
        [var a, var b] when a.IsMemory => Instruction.Create(code, a.Memory!.Value, b.Register),
        [var a, var b] when b.IsMemory => Instruction.Create(code, a.Register, b.Memory!.Value),
        [var a, var b] => Instruction.Create(code, a.Register, b.Register),
        [var a, var b, { Immediate: { } i }] when a.IsMemory => Instruction.Create(code, a.Memory!.Value, b.Register, (uint)i),
        [var a, var b, { Immediate: { } i }] when b.IsMemory => i < 0 ? Instruction.Create(code, a.Register, b.Memory!.Value, (int)i) : Instruction.Create(code, a.Register, b.Memory!.Value, (uint)i),
        [var a, var b, { Immediate: { } i }] => i < 0 ? Instruction.Create(code, a.Register, b.Register, (int)i) : Instruction.Create(code, a.Register, b.Register, (uint)i),
        [var a, var b, var c] when a.IsMemory => Instruction.Create(code, a.Memory!.Value, b.Register, c.Register),
        [var a, var b, var c] => Instruction.Create(code, a.Register, b.Register, c.Register),
        _ => throw new ArgumentException($"no way to build {code} from {operands.Length} operands", nameof(operands)),
    };

    public override string ToString() => Memory is not null ? "mem" : Immediate is { } i ? $"0x{i:X}" : Register.ToString();
}
