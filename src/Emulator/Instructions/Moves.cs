using System.Runtime.CompilerServices;
using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// Data movement that touches no flags: MOV (general registers; segment, control and debug registers are bound by
/// <see cref="SegmentLoads"/> and <see cref="SystemOps"/>), MOVZX/MOVSX, XCHG, LEA, CBW/CWDE/CWD/CDQ, XLAT, BSWAP
/// and the NOPs.
/// </summary>
internal static unsafe class Moves
{
    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Mov, BindMov);
        table.Add(Mnemonic.Movzx, BindExtend);
        table.Add(Mnemonic.Movsx, BindExtend);
        table.Add(Mnemonic.Xchg, BindExchange);
        table.Add(Mnemonic.Lea, BindLea);
        table.Add(Mnemonic.Cbw, (in Instruction i, ref DecodedInstruction d, BindContext c) => Set(ref d, &Cbw));
        table.Add(Mnemonic.Cwde, (in Instruction i, ref DecodedInstruction d, BindContext c) => Set(ref d, &Cwde));
        table.Add(Mnemonic.Cwd, (in Instruction i, ref DecodedInstruction d, BindContext c) => Set(ref d, &Cwd));
        table.Add(Mnemonic.Cdq, (in Instruction i, ref DecodedInstruction d, BindContext c) => Set(ref d, &Cdq));
        table.Add(Mnemonic.Xlatb, (in Instruction i, ref DecodedInstruction d, BindContext c) => Set(ref d, &Xlat));
        table.Add(Mnemonic.Bswap, BindBswap);
        table.Add(Mnemonic.Nop, (in Instruction i, ref DecodedInstruction d, BindContext c) => Set(ref d, &Nop));
    }

    public static bool Set(ref DecodedInstruction d, delegate*<Cpu, ref DecodedInstruction, void> handler)
    {
        d.Execute = handler;
        return true;
    }

    private static bool BindMov(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        Register r0 = Operands.IsRegister(in i, 0) ? i.Op0Register : Iced.Intel.Register.None;
        Register r1 = i.OpCount > 1 && Operands.IsRegister(in i, 1) ? i.Op1Register : Iced.Intel.Register.None;
        if (r0.IsSegmentRegister() || r1.IsSegmentRegister())
        {
            return SegmentLoads.BindMov(in i, ref d, c);
        }

        if (r0.IsCR() || r1.IsCR() || r0.IsDR() || r1.IsDR() || r0.IsTR() || r1.IsTR())
        {
            return SystemOps.BindMovControl(in i, ref d, c);
        }

        int size = Operands.SizeOf(in i, 0);
        d.Execute = (i.Op0Kind, Operands.IsImmediate(in i, 1) ? OpKind.Immediate32 : i.Op1Kind) switch
        {
            (OpKind.Register, OpKind.Register) => ByWidth<Reg0, Reg1>(size),
            (OpKind.Register, OpKind.Memory) => ByWidth<Reg0, Mem>(size),
            (OpKind.Register, OpKind.Immediate32) => ByWidth<Reg0, Imm>(size),
            (OpKind.Memory, OpKind.Register) => ByWidth<Mem, Reg1>(size),
            (OpKind.Memory, OpKind.Immediate32) => ByWidth<Mem, Imm>(size),
            _ => null,
        };
        return d.Execute != null;
    }

    private static delegate*<Cpu, ref DecodedInstruction, void> ByWidth<TDst, TSrc>(int size)
        where TDst : IOperand
        where TSrc : IOperand => size switch
        {
            1 => &Move<W8, TDst, TSrc>.Run,
            2 => &Move<W16, TDst, TSrc>.Run,
            4 => &Move<W32, TDst, TSrc>.Run,
            _ => null,
        };

    private static bool BindExtend(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        bool signed = i.Mnemonic == Mnemonic.Movsx;
        int to = Operands.SizeOf(in i, 0);
        int from = Operands.SizeOf(in i, 1);
        bool memory = Operands.IsMemory(in i, 1);
        d.Execute = (signed, to, from, memory) switch
        {
            (false, 2, 1, false) => &Extend<W16, W8, Reg1, Zero>.Run,
            (false, 2, 1, true) => &Extend<W16, W8, Mem, Zero>.Run,
            (false, 4, 1, false) => &Extend<W32, W8, Reg1, Zero>.Run,
            (false, 4, 1, true) => &Extend<W32, W8, Mem, Zero>.Run,
            (false, 2, 2, false) => &Extend<W16, W16, Reg1, Zero>.Run,
            (false, 2, 2, true) => &Extend<W16, W16, Mem, Zero>.Run,
            (false, 4, 2, false) => &Extend<W32, W16, Reg1, Zero>.Run,
            (false, 4, 2, true) => &Extend<W32, W16, Mem, Zero>.Run,
            (true, 2, 1, false) => &Extend<W16, W8, Reg1, Sign>.Run,
            (true, 2, 1, true) => &Extend<W16, W8, Mem, Sign>.Run,
            (true, 4, 1, false) => &Extend<W32, W8, Reg1, Sign>.Run,
            (true, 4, 1, true) => &Extend<W32, W8, Mem, Sign>.Run,
            (true, 2, 2, false) => &Extend<W16, W16, Reg1, Sign>.Run,
            (true, 2, 2, true) => &Extend<W16, W16, Mem, Sign>.Run,
            (true, 4, 2, false) => &Extend<W32, W16, Reg1, Sign>.Run,
            (true, 4, 2, true) => &Extend<W32, W16, Mem, Sign>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    private static bool BindExchange(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        int size = Operands.SizeOf(in i, 0);
        bool memory = Operands.IsMemory(in i, 0) || Operands.IsMemory(in i, 1);
        if (Operands.IsMemory(in i, 1))
        {
            // XCHG r, m: keep the register in R1 as for XCHG m, r.
            d.R1 = d.R0;
        }

        d.Execute = (size, memory) switch
        {
            (1, false) => &Exchange<W8, Reg0>.Run,
            (2, false) => &Exchange<W16, Reg0>.Run,
            (4, false) => &Exchange<W32, Reg0>.Run,
            (1, true) => &Exchange<W8, Mem>.Run,
            (2, true) => &Exchange<W16, Mem>.Run,
            (4, true) => &Exchange<W32, Mem>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    private static bool BindLea(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        if (!Operands.IsMemory(in i, 1))
        {
            return false;
        }

        d.Execute = Operands.SizeOf(in i, 0) == 4 ? &Lea32 : &Lea16;
        return true;
    }

    private static bool BindBswap(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        // QEMU swaps all 32 bits whatever the operand size (a 16-bit BSWAP is undefined).
        d.Execute = &Bswap;
        return true;
    }

    private interface IExtension
    {
        static abstract uint Extend<TW>(uint value)
            where TW : IWidth;
    }

    private readonly struct Zero : IExtension
    {
        public static uint Extend<TW>(uint value)
            where TW : IWidth => value & TW.Mask;
    }

    private readonly struct Sign : IExtension
    {
        public static uint Extend<TW>(uint value)
            where TW : IWidth => TW.SignExtend(value & TW.Mask);
    }

    internal static class Move<TW, TDst, TSrc>
        where TW : IWidth
        where TDst : IOperand
        where TSrc : IOperand
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Run(Cpu cpu, ref DecodedInstruction d) => TDst.Write<TW>(cpu, ref d, TSrc.Read<TW>(cpu, ref d));
    }

    private static class Extend<TTo, TFrom, TSrc, TExtension>
        where TTo : IWidth
        where TFrom : IWidth
        where TSrc : IOperand
        where TExtension : IExtension
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d) =>
            TTo.SetReg(cpu, d.R0, TExtension.Extend<TFrom>(TSrc.Read<TFrom>(cpu, ref d)) & TTo.Mask);
    }

    private static class Exchange<TW, TOther>
        where TW : IWidth
        where TOther : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            if (typeof(TOther) == typeof(Mem))
            {
                uint address = cpu.Address(ref d);
                uint fromMemory = TW.Read(cpu, d.Segment, address);
                TW.Write(cpu, d.Segment, address, TW.GetReg(cpu, d.R1));
                TW.SetReg(cpu, d.R1, fromMemory);
            }
            else
            {
                uint a = TW.GetReg(cpu, d.R0);
                TW.SetReg(cpu, d.R0, TW.GetReg(cpu, d.R1));
                TW.SetReg(cpu, d.R1, a);
            }
        }
    }

    private static void Lea16(Cpu cpu, ref DecodedInstruction d) => cpu.SetReg16(d.R0, (ushort)cpu.Address(ref d));

    private static void Lea32(Cpu cpu, ref DecodedInstruction d) => cpu.Regs[d.R0] = cpu.Address(ref d);

    private static void Cbw(Cpu cpu, ref DecodedInstruction d) => cpu.SetReg16(RegisterIndex.Eax, (ushort)(sbyte)cpu.Regs[RegisterIndex.Eax]);

    private static void Cwde(Cpu cpu, ref DecodedInstruction d) => cpu.Regs[RegisterIndex.Eax] = (uint)(short)cpu.Regs[RegisterIndex.Eax];

    private static void Cwd(Cpu cpu, ref DecodedInstruction d) =>
        cpu.SetReg16(RegisterIndex.Edx, (short)cpu.Regs[RegisterIndex.Eax] < 0 ? (ushort)0xFFFF : (ushort)0);

    private static void Cdq(Cpu cpu, ref DecodedInstruction d) =>
        cpu.Regs[RegisterIndex.Edx] = (int)cpu.Regs[RegisterIndex.Eax] < 0 ? 0xFFFF_FFFFu : 0;

    /// <summary>XLAT: AL = [seg:(E)BX + AL] (the decoder's index slot would name all of EAX, so AL is added here).</summary>
    private static void Xlat(Cpu cpu, ref DecodedInstruction d)
    {
        uint offset = (cpu.Regs[RegisterIndex.Ebx] + (byte)cpu.Regs[RegisterIndex.Eax]) & d.AddressMask;
        cpu.SetReg8(0, cpu.Read8(d.Segment, offset));
    }

    private static void Bswap(Cpu cpu, ref DecodedInstruction d) =>
        cpu.Regs[d.R0] = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(cpu.Regs[d.R0]);

    private static void Nop(Cpu cpu, ref DecodedInstruction d)
    {
    }
}
