using Iced.Intel;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Decoding;

/// <summary>Iced's registers and operand kinds in the CPU's terms: register-file indexes, segment indexes, sizes.</summary>
internal static class Operands
{
    /// <summary>
    /// The register-file index of a general register (16/32-bit: 0–7 by encoding; 8-bit: the byte offset of AL..BH),
    /// or a segment, control or debug register's number.
    /// </summary>
    public static int RegisterIndexOf(Register register)
    {
        if (register >= Register.AL && register <= Register.BH)
        {
            return RegisterIndex.ByteOffset(register - Register.AL);
        }

        if (register >= Register.AX && register <= Register.DI)
        {
            return register - Register.AX;
        }

        if (register >= Register.EAX && register <= Register.EDI)
        {
            return register - Register.EAX;
        }

        if (register >= Register.ES && register <= Register.GS)
        {
            return register - Register.ES;
        }

        if (register >= Register.CR0 && register <= Register.CR15)
        {
            return register - Register.CR0;
        }

        if (register >= Register.DR0 && register <= Register.DR15)
        {
            return register - Register.DR0;
        }

        // Anything else (64-bit, vector, x87) never reaches a handler: its binder refuses the form.
        return RegisterIndex.Zero;
    }

    public static int SegmentIndexOf(Register segment) => segment switch
    {
        Register.ES => SegmentIndex.Es,
        Register.CS => SegmentIndex.Cs,
        Register.SS => SegmentIndex.Ss,
        Register.FS => SegmentIndex.Fs,
        Register.GS => SegmentIndex.Gs,
        _ => SegmentIndex.Ds,
    };

    /// <summary>Operand <paramref name="op"/>'s size in bytes (register or memory); 0 for other kinds.</summary>
    public static int SizeOf(in Instruction instruction, int op) => instruction.GetOpKind(op) switch
    {
        OpKind.Register => instruction.GetOpRegister(op).GetSize(),
        OpKind.Memory => instruction.MemorySize.GetSize(),
        _ => 0,
    };

    public static bool IsRegister(in Instruction instruction, int op) => instruction.GetOpKind(op) == OpKind.Register;

    public static bool IsMemory(in Instruction instruction, int op) => instruction.GetOpKind(op) == OpKind.Memory;

    public static bool IsImmediate(in Instruction instruction, int op) => instruction.GetOpKind(op) is
        OpKind.Immediate8 or OpKind.Immediate8to16 or OpKind.Immediate8to32 or OpKind.Immediate16 or OpKind.Immediate32;

    /// <summary>A general register of 8, 16 or 32 bits (not a segment, control, debug or wider register).</summary>
    public static bool IsGeneral(Register register) =>
        (register >= Register.AL && register <= Register.BH) || (register >= Register.AX && register <= Register.DI) ||
        (register >= Register.EAX && register <= Register.EDI);

    /// <summary>The first immediate cut to the width of operand 0 (a sign-extended imm8 of a 16-bit form keeps 16 bits).</summary>
    public static uint ImmediateMask(in Instruction instruction)
    {
        int size = instruction.OpCount > 0 ? SizeOf(in instruction, 0) : 0;
        return size switch
        {
            1 => 0xFF,
            2 => 0xFFFF,
            _ => 0xFFFF_FFFF,
        };
    }
}
