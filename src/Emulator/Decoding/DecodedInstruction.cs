using System.Runtime.InteropServices;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Decoding;

/// <summary>
/// One instruction decoded once (by Iced) into what its handler needs, kept in a <see cref="Block"/> until its bytes
/// change. The handler is a function pointer chosen at decode time for the exact form (operation, width, operands),
/// so executing it dispatches nothing more.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct DecodedInstruction
{
    /// <summary>Executes the instruction.</summary>
    public delegate*<Cpu, ref DecodedInstruction, void> Execute;

    /// <summary>Offset of the instruction in CS (EIP while it executes; where a fault points).</summary>
    public uint Ip;

    /// <summary>Offset of the next instruction in CS (what CALL pushes, what relative branches add to).</summary>
    public uint NextIp;

    /// <summary>Immediate operand (sign- or zero-extended as the form requires), or a relative branch target.</summary>
    public uint Imm;

    /// <summary>Second immediate: the selector of a far pointer, ENTER's nesting level.</summary>
    public uint Imm2;

    /// <summary>Memory operand: displacement.</summary>
    public uint Disp;

    /// <summary>Memory operand: 0xFFFF for 16-bit addressing, 0xFFFFFFFF for 32-bit.</summary>
    public uint AddressMask;

    /// <summary>First register operand: a register index, or for 8-bit operands the byte offset in the file.</summary>
    public byte R0;

    /// <summary>Second register operand, encoded as <see cref="R0"/>.</summary>
    public byte R1;

    /// <summary>Memory operand: base register index (<see cref="RegisterIndex.Zero"/> for none).</summary>
    public byte Base;

    /// <summary>Memory operand: index register index (<see cref="RegisterIndex.Zero"/> for none).</summary>
    public byte Index;

    /// <summary>Memory operand: index scale as a shift (0–3).</summary>
    public byte Scale;

    /// <summary>Memory operand: segment (<see cref="SegmentIndex"/>), after overrides.</summary>
    public byte Segment;

    /// <summary>A small per-form argument: a condition code, a segment register, a REP kind, a control register.</summary>
    public byte Extra;

    /// <summary>Instruction length in bytes.</summary>
    public byte Length;

    /// <summary>The same handler as <see cref="Execute"/>, when the execution loop runs it inline (no call).</summary>
    public InlineForm Form;
}
