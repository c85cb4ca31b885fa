using System.Runtime.CompilerServices;
using Iced.Intel;
using Vmm.Accelerator.State;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// PUSH and POP (general registers, memory, immediates, segment registers), PUSHA/PUSHAD and POPA/POPAD. The width
/// pushed is the operand size; SP or ESP moves as SS's B bit says. Instructions that move several values, or pop
/// into something that can fault, compute everything first and update ESP last, so a fault leaves ESP as it was.
/// </summary>
internal static unsafe class StackOps
{
    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Push, BindPush);
        table.Add(Mnemonic.Pop, BindPop);
        table.Add(Mnemonic.Pusha, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &PushAll<W16>.Run));
        table.Add(Mnemonic.Pushad, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &PushAll<W32>.Run));
        table.Add(Mnemonic.Popa, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &PopAll<W16>.Run));
        table.Add(Mnemonic.Popad, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &PopAll<W32>.Run));
    }

    /// <summary>Pushes a value of <typeparamref name="TW"/>'s width (16 or 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Push<TW>(Cpu cpu, uint value)
        where TW : IWidth
    {
        if (TW.Size == 4)
        {
            cpu.Push32(value);
        }
        else
        {
            cpu.Push16((ushort)value);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Pop<TW>(Cpu cpu)
        where TW : IWidth => TW.Size == 4 ? cpu.Pop32() : cpu.Pop16();

    /// <summary>ESP moved by <paramref name="delta"/> within the stack pointer's width (the rest of ESP kept).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint MovedStackPointer(Cpu cpu, uint delta)
    {
        uint mask = cpu.StackMask;
        uint esp = cpu.Regs[RegisterIndex.Esp];
        return (esp & ~mask) | ((esp + delta) & mask);
    }

    private static bool BindPush(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        int size = c.OperandSize;
        switch (i.Op0Kind)
        {
            case OpKind.Register when i.Op0Register.IsSegmentRegister():
                d.Execute = size == 4 ? &PushSegment<W32>.Run : &PushSegment<W16>.Run;
                return true;
            case OpKind.Register when Operands.IsGeneral(i.Op0Register):
                d.Execute = size == 4 ? &PushOperand<W32, Reg0>.Run : &PushOperand<W16, Reg0>.Run;
                return true;
            case OpKind.Memory:
                d.Execute = size == 4 ? &PushOperand<W32, Mem>.Run : &PushOperand<W16, Mem>.Run;
                return true;
            case OpKind.Immediate8to16 or OpKind.Immediate8to32 or OpKind.Immediate16 or OpKind.Immediate32:
                // The binder keeps the whole sign-extended immediate; a 16-bit push keeps its low half.
                d.Execute = size == 4 ? &PushOperand<W32, Imm>.Run : &PushOperand<W16, Imm>.Run;
                return true;
            default:
                return false;
        }
    }

    private static bool BindPop(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        int size = c.OperandSize;
        switch (i.Op0Kind)
        {
            case OpKind.Register when i.Op0Register.IsSegmentRegister():
                // POP CS does not exist (0x0F is the two-byte escape on every CPU this one imitates).
                if (i.Op0Register == Iced.Intel.Register.CS)
                {
                    return false;
                }

                d.Execute = (size, i.Op0Register == Iced.Intel.Register.SS) switch
                {
                    (4, true) => &PopStackSegment<W32>,
                    (4, false) => &PopSegment<W32>,
                    (_, true) => &PopStackSegment<W16>,
                    _ => &PopSegment<W16>,
                };
                return true;
            case OpKind.Register when Operands.IsGeneral(i.Op0Register):
                d.Execute = size == 4 ? &PopRegister<W32> : &PopRegister<W16>;
                return true;
            case OpKind.Memory:
                d.Execute = size == 4 ? &PopMemory<W32> : &PopMemory<W16>;
                return true;
            default:
                return false;
        }
    }

    /// <summary>PUSH r/m/imm. PUSH SP pushes SP as it was before the push (80286 and later): the value is read first.</summary>
    private static class PushOperand<TW, TSrc>
        where TW : IWidth
        where TSrc : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d) => Push<TW>(cpu, TSrc.Read<TW>(cpu, ref d));
    }

    /// <summary>PUSH sreg: with a 32-bit operand size the selector is zero-extended (as QEMU does).</summary>
    private static class PushSegment<TW>
        where TW : IWidth
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d) => Push<TW>(cpu, cpu.Segments[d.R0].Selector);
    }

    /// <summary>POP r: POP SP leaves SP = the popped value (the increment is overwritten).</summary>
    private static void PopRegister<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth => TW.SetReg(cpu, d.R0, Pop<TW>(cpu));

    /// <summary>
    /// POP m: the address is computed with ESP already incremented (as the CPU does for [ESP]-based operands), but
    /// ESP is committed only after the write, so a faulting write leaves ESP unchanged.
    /// </summary>
    private static void PopMemory<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth
    {
        uint value = cpu.PeekStack(0, TW.Size);
        uint esp = cpu.Regs[RegisterIndex.Esp];
        uint popped = MovedStackPointer(cpu, (uint)TW.Size);
        cpu.Regs[RegisterIndex.Esp] = popped;
        uint address = cpu.Address(ref d);
        cpu.Regs[RegisterIndex.Esp] = esp;
        TW.Write(cpu, d.Segment, address, value);
        cpu.Regs[RegisterIndex.Esp] = popped;
    }

    /// <summary>POP DS/ES/FS/GS: the load may fault (protected mode), so ESP moves only after it.</summary>
    private static void PopSegment<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth
    {
        ushort selector = (ushort)cpu.PeekStack(0, TW.Size);
        uint popped = MovedStackPointer(cpu, (uint)TW.Size);
        cpu.LoadSegment(d.R0, selector);
        cpu.Regs[RegisterIndex.Esp] = popped;
    }

    /// <summary>
    /// POP SS: ESP moves by the old stack's width (computed before the load, which may change SS.B). Interrupts are
    /// held off for one instruction, so that the MOV/POP of ESP that follows completes the switch; the block ends so
    /// that the shadow covers exactly the next instruction.
    /// </summary>
    private static void PopStackSegment<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth
    {
        ushort selector = (ushort)cpu.PeekStack(0, TW.Size);
        uint popped = MovedStackPointer(cpu, (uint)TW.Size);
        cpu.LoadSegment(SegmentIndex.Ss, selector);
        cpu.Regs[RegisterIndex.Esp] = popped;
        cpu.InterruptShadow = VcpuEvents.ShadowMovSs;
        cpu.Stop |= Cpu.StopAfter;
    }

    /// <summary>PUSHA/PUSHAD: AX CX DX BX, SP as it was, BP SI DI; all written before SP moves.</summary>
    private static class PushAll<TW>
        where TW : IWidth
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            uint mask = cpu.StackMask;
            uint esp = cpu.Regs[RegisterIndex.Esp];
            for (int r = RegisterIndex.Eax; r <= RegisterIndex.Edi; r++)
            {
                uint at = (esp - ((uint)(r + 1) * (uint)TW.Size)) & mask;
                TW.Write(cpu, SegmentIndex.Ss, at, cpu.Regs[r] & TW.Mask);
            }

            cpu.Regs[RegisterIndex.Esp] = (esp & ~mask) | ((esp - (8 * (uint)TW.Size)) & mask);
        }
    }

    /// <summary>POPA/POPAD: DI SI BP, (SP skipped), BX DX CX AX; all read before any register changes.</summary>
    private static class PopAll<TW>
        where TW : IWidth
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            uint mask = cpu.StackMask;
            uint esp = cpu.Regs[RegisterIndex.Esp];
            uint* values = stackalloc uint[8];
            for (int r = RegisterIndex.Eax; r <= RegisterIndex.Edi; r++)
            {
                if (r != RegisterIndex.Esp)
                {
                    values[r] = TW.Read(cpu, SegmentIndex.Ss, (esp + ((uint)(RegisterIndex.Edi - r) * (uint)TW.Size)) & mask);
                }
            }

            for (int r = RegisterIndex.Eax; r <= RegisterIndex.Edi; r++)
            {
                if (r != RegisterIndex.Esp)
                {
                    TW.SetReg(cpu, r, values[r]);
                }
            }

            cpu.Regs[RegisterIndex.Esp] = (esp & ~mask) | ((esp + (8 * (uint)TW.Size)) & mask);
        }
    }
}
