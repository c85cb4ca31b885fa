using Iced.Intel;
using Vmm.Emulator.Instructions;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Decoding;

/// <summary>
/// Binds a decoded instruction to its handler: fills the operand fields every family shares (registers, the memory
/// operand's parts, the immediate, branch targets), then asks the family that owns the mnemonic to pick the handler
/// for the exact form. A mnemonic no family owns, a form a family refuses, or bytes Iced cannot decode become an
/// instruction that raises #UD in the guest.
/// </summary>
internal static unsafe class InstructionBinder
{
    private static readonly Binder?[] Binders = CreateTable();

    public static DecodedInstruction Bind(in Instruction instruction, ReadOnlySpan<byte> bytes, bool code32)
    {
        bool operandOverride = false;
        bool addressOverride = false;
        foreach (byte b in bytes)
        {
            if (b == 0x66)
            {
                operandOverride = true;
            }
            else if (b == 0x67)
            {
                addressOverride = true;
            }
            else if (b is not (0xF0 or 0xF2 or 0xF3 or 0x2E or 0x36 or 0x3E or 0x26 or 0x64 or 0x65))
            {
                break;
            }
        }

        var context = new BindContext(code32, code32 ^ operandOverride, code32 ^ addressOverride);
        var d = new DecodedInstruction
        {
            Ip = (uint)instruction.IP,
            NextIp = (uint)instruction.NextIP,
            Length = (byte)instruction.Length,
            Base = RegisterIndex.Zero,
            Index = RegisterIndex.Zero,
            Segment = SegmentIndex.Ds,
            AddressMask = context.Address32 ? 0xFFFF_FFFFu : 0xFFFFu,
        };

        FillOperands(in instruction, ref d);
        Binder? binder = instruction.Code == Code.INVALID ? null : Binders[(int)instruction.Mnemonic];
        if (binder is null || !binder(in instruction, ref d, context))
        {
            d.Execute = &Undefined;
        }

        d.Form = InlineForms.FormOf(d.Execute);
        return d;
    }

    /// <summary>#UD: outside this CPU's scope, or not an instruction at all.</summary>
    public static void Undefined(Cpu cpu, ref DecodedInstruction d) =>
        throw new CpuException(ExceptionVector.InvalidOpcode);

    private static void FillOperands(in Instruction instruction, ref DecodedInstruction d)
    {
        int immediates = 0;
        for (int op = 0; op < instruction.OpCount; op++)
        {
            switch (instruction.GetOpKind(op))
            {
                case OpKind.Register:
                    byte index = (byte)Operands.RegisterIndexOf(instruction.GetOpRegister(op));
                    if (op == 0)
                    {
                        d.R0 = index;
                    }
                    else if (op == 1)
                    {
                        d.R1 = index;
                    }

                    break;

                case OpKind.Memory:
                    d.Base = (byte)(instruction.MemoryBase == Register.None ? RegisterIndex.Zero : Operands.RegisterIndexOf(instruction.MemoryBase));
                    d.Index = (byte)(instruction.MemoryIndex == Register.None ? RegisterIndex.Zero : Operands.RegisterIndexOf(instruction.MemoryIndex));
                    d.Scale = (byte)System.Numerics.BitOperations.Log2((uint)instruction.MemoryIndexScale);
                    d.Disp = (uint)instruction.MemoryDisplacement64;
                    d.Segment = (byte)Operands.SegmentIndexOf(instruction.MemorySegment);
                    break;

                case OpKind.MemorySegSI or OpKind.MemorySegESI or OpKind.MemorySegDI or OpKind.MemorySegEDI or OpKind.MemorySegRSI or OpKind.MemorySegRDI:
                    d.Segment = (byte)Operands.SegmentIndexOf(instruction.MemorySegment);
                    break;

                case OpKind.NearBranch16 or OpKind.NearBranch32:
                    d.Imm = (uint)instruction.NearBranchTarget;
                    break;

                case OpKind.FarBranch16:
                    d.Imm = instruction.FarBranch16;
                    d.Imm2 = instruction.FarBranchSelector;
                    break;

                case OpKind.FarBranch32:
                    d.Imm = instruction.FarBranch32;
                    d.Imm2 = instruction.FarBranchSelector;
                    break;

                case OpKind.Immediate8 or OpKind.Immediate8to16 or OpKind.Immediate8to32 or OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate8_2nd:
                    uint value = (uint)instruction.GetImmediate(op);
                    if (immediates++ == 0)
                    {
                        d.Imm = value & Operands.ImmediateMask(in instruction);
                    }
                    else
                    {
                        d.Imm2 = value;
                    }

                    break;
            }
        }
    }

    private static Binder?[] CreateTable()
    {
        var table = new BinderTable();
        Arithmetic.Register(table);
        Moves.Register(table);
        FlagControl.Register(table);
        Shifts.Register(table);
        Multiply.Register(table);
        Bcd.Register(table);
        BitOps.Register(table);
        ControlFlow.Register(table);
        StackOps.Register(table);
        Strings.Register(table);
        PortIo.Register(table);
        SystemOps.Register(table);
        SegmentLoads.Register(table);
        FpuProbe.Register(table);
        return table.Binders;
    }
}
