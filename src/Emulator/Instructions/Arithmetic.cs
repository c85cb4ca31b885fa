using System.Runtime.CompilerServices;
using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// ADD ADC SUB SBB CMP AND OR XOR TEST, INC DEC NEG NOT, XADD CMPXCHG: the two-operand ALU and its one-operand
/// relatives. Each records its operands for the lazy flags (<see cref="FlagOp"/>) exactly as QEMU's cc_op does.
/// </summary>
internal static unsafe class Arithmetic
{
    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Add, BindBinary<Add>);
        table.Add(Mnemonic.Adc, BindBinary<Adc>);
        table.Add(Mnemonic.Sub, BindBinary<Sub>);
        table.Add(Mnemonic.Sbb, BindBinary<Sbb>);
        table.Add(Mnemonic.Cmp, BindBinary<Cmp>);
        table.Add(Mnemonic.And, BindBinary<And>);
        table.Add(Mnemonic.Or, BindBinary<Or>);
        table.Add(Mnemonic.Xor, BindBinary<Xor>);
        table.Add(Mnemonic.Test, BindBinary<Test>);
        table.Add(Mnemonic.Inc, BindUnary<Inc>);
        table.Add(Mnemonic.Dec, BindUnary<Dec>);
        table.Add(Mnemonic.Neg, BindUnary<Neg>);
        table.Add(Mnemonic.Not, BindUnary<Not>);
        table.Add(Mnemonic.Xadd, BindExchangeAdd);
        table.Add(Mnemonic.Cmpxchg, BindCompareExchange);
    }

    private static bool BindBinary<TOp>(in Instruction i, ref DecodedInstruction d, BindContext c)
        where TOp : IBinaryOp
    {
        int size = Operands.SizeOf(in i, 0);
        d.Execute = (i.Op0Kind, Operands.IsImmediate(in i, 1) ? OpKind.Immediate32 : i.Op1Kind) switch
        {
            (OpKind.Register, OpKind.Register) => ByWidth<TOp, Reg0, Reg1>(size),
            (OpKind.Register, OpKind.Memory) => ByWidth<TOp, Reg0, Mem>(size),
            (OpKind.Register, OpKind.Immediate32) => ByWidth<TOp, Reg0, Imm>(size),
            (OpKind.Memory, OpKind.Register) => ByWidth<TOp, Mem, Reg1>(size),
            (OpKind.Memory, OpKind.Immediate32) => ByWidth<TOp, Mem, Imm>(size),
            _ => null,
        };
        return d.Execute != null;
    }

    private static delegate*<Cpu, ref DecodedInstruction, void> ByWidth<TOp, TDst, TSrc>(int size)
        where TOp : IBinaryOp
        where TDst : IOperand
        where TSrc : IOperand => size switch
        {
            1 => &Binary<TOp, W8, TDst, TSrc>.Run,
            2 => &Binary<TOp, W16, TDst, TSrc>.Run,
            4 => &Binary<TOp, W32, TDst, TSrc>.Run,
            _ => null,
        };

    private static bool BindUnary<TOp>(in Instruction i, ref DecodedInstruction d, BindContext c)
        where TOp : IUnaryOp
    {
        int size = Operands.SizeOf(in i, 0);
        bool memory = Operands.IsMemory(in i, 0);
        d.Execute = (size, memory) switch
        {
            (1, false) => &Unary<TOp, W8, Reg0>.Run,
            (2, false) => &Unary<TOp, W16, Reg0>.Run,
            (4, false) => &Unary<TOp, W32, Reg0>.Run,
            (1, true) => &Unary<TOp, W8, Mem>.Run,
            (2, true) => &Unary<TOp, W16, Mem>.Run,
            (4, true) => &Unary<TOp, W32, Mem>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    private static bool BindExchangeAdd(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        int size = Operands.SizeOf(in i, 0);
        bool memory = Operands.IsMemory(in i, 0);
        d.Execute = (size, memory) switch
        {
            (1, false) => &ExchangeAdd<W8, Reg0>.Run,
            (2, false) => &ExchangeAdd<W16, Reg0>.Run,
            (4, false) => &ExchangeAdd<W32, Reg0>.Run,
            (1, true) => &ExchangeAdd<W8, Mem>.Run,
            (2, true) => &ExchangeAdd<W16, Mem>.Run,
            (4, true) => &ExchangeAdd<W32, Mem>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    private static bool BindCompareExchange(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        int size = Operands.SizeOf(in i, 0);
        bool memory = Operands.IsMemory(in i, 0);
        d.Execute = (size, memory) switch
        {
            (1, false) => &CompareExchange<W8, Reg0>.Run,
            (2, false) => &CompareExchange<W16, Reg0>.Run,
            (4, false) => &CompareExchange<W32, Reg0>.Run,
            (1, true) => &CompareExchange<W8, Mem>.Run,
            (2, true) => &CompareExchange<W16, Mem>.Run,
            (4, true) => &CompareExchange<W32, Mem>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    /// <summary>A two-operand ALU operation: computes the result and records the lazy flags.</summary>
    public interface IBinaryOp
    {
        /// <summary>CMP and TEST only set flags.</summary>
        static abstract bool WritesResult { get; }

        static abstract uint Apply<TW>(Cpu cpu, uint dst, uint src)
            where TW : IWidth;
    }

    public interface IUnaryOp
    {
        static abstract uint Apply<TW>(Cpu cpu, uint value)
            where TW : IWidth;
    }

    internal static class Binary<TOp, TW, TDst, TSrc>
        where TOp : IBinaryOp
        where TW : IWidth
        where TDst : IOperand
        where TSrc : IOperand
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            uint result = TOp.Apply<TW>(cpu, TDst.Read<TW>(cpu, ref d), TSrc.Read<TW>(cpu, ref d));
            if (TOp.WritesResult)
            {
                TDst.Write<TW>(cpu, ref d, result);
            }
        }
    }

    internal static class Unary<TOp, TW, TDst>
        where TOp : IUnaryOp
        where TW : IWidth
        where TDst : IOperand
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Run(Cpu cpu, ref DecodedInstruction d) =>
            TDst.Write<TW>(cpu, ref d, TOp.Apply<TW>(cpu, TDst.Read<TW>(cpu, ref d)));
    }

    /// <summary>XADD: the sum goes to the destination, the old destination to the source register.</summary>
    private static class ExchangeAdd<TW, TDst>
        where TW : IWidth
        where TDst : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            uint address = cpu.Address(ref d);
            uint dst = typeof(TDst) == typeof(Mem) ? TW.Read(cpu, d.Segment, address) : TW.GetReg(cpu, d.R0);
            uint src = TW.GetReg(cpu, d.R1);
            uint sum = Add.Apply<TW>(cpu, dst, src);
            if (typeof(TDst) == typeof(Mem))
            {
                TW.Write(cpu, d.Segment, address, sum);
                TW.SetReg(cpu, d.R1, dst);
            }
            else
            {
                TW.SetReg(cpu, d.R1, dst);
                TW.SetReg(cpu, d.R0, sum);
            }
        }
    }

    /// <summary>
    /// CMPXCHG: compares the accumulator with the destination (flags as CMP); equal → destination = source, else
    /// accumulator = destination. A memory destination is written either way, as the 486 does.
    /// </summary>
    private static class CompareExchange<TW, TDst>
        where TW : IWidth
        where TDst : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            uint address = cpu.Address(ref d);
            uint dst = typeof(TDst) == typeof(Mem) ? TW.Read(cpu, d.Segment, address) : TW.GetReg(cpu, d.R0);
            uint accumulator = TW.GetReg(cpu, RegisterIndex.Eax);
            Sub.Apply<TW>(cpu, accumulator, dst);
            bool equal = accumulator == dst;
            uint stored = equal ? TW.GetReg(cpu, d.R1) : dst;
            if (typeof(TDst) == typeof(Mem))
            {
                TW.Write(cpu, d.Segment, address, stored);
            }
            else
            {
                TW.SetReg(cpu, d.R0, stored);
            }

            if (!equal)
            {
                TW.SetReg(cpu, RegisterIndex.Eax, dst);
            }
        }
    }

    public readonly struct Add : IBinaryOp
    {
        public static bool WritesResult => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint dst, uint src)
            where TW : IWidth
        {
            uint result = (dst + src) & TW.Mask;
            cpu.CcOp = FlagOp.Add8 + TW.FlagOffset;
            cpu.CcDst = result;
            cpu.CcSrc = src;
            return result;
        }
    }

    public readonly struct Adc : IBinaryOp
    {
        public static bool WritesResult => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint dst, uint src)
            where TW : IWidth
        {
            uint carry = cpu.Carry();
            uint result = (dst + src + carry) & TW.Mask;
            cpu.CcOp = FlagOp.Adc8 + TW.FlagOffset;
            cpu.CcDst = result;
            cpu.CcSrc = src;
            cpu.CcSrc2 = carry;
            return result;
        }
    }

    public readonly struct Sub : IBinaryOp
    {
        public static bool WritesResult => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint dst, uint src)
            where TW : IWidth
        {
            uint result = (dst - src) & TW.Mask;
            cpu.CcOp = FlagOp.Sub8 + TW.FlagOffset;
            cpu.CcDst = result;
            cpu.CcSrc = src;
            return result;
        }
    }

    public readonly struct Cmp : IBinaryOp
    {
        public static bool WritesResult => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint dst, uint src)
            where TW : IWidth => Sub.Apply<TW>(cpu, dst, src);
    }

    public readonly struct Sbb : IBinaryOp
    {
        public static bool WritesResult => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint dst, uint src)
            where TW : IWidth
        {
            uint borrow = cpu.Carry();
            uint result = (dst - src - borrow) & TW.Mask;
            cpu.CcOp = FlagOp.Sbb8 + TW.FlagOffset;
            cpu.CcDst = result;
            cpu.CcSrc = src;
            cpu.CcSrc2 = borrow;
            return result;
        }
    }

    public readonly struct And : IBinaryOp
    {
        public static bool WritesResult => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint dst, uint src)
            where TW : IWidth => Logic<TW>(cpu, dst & src);
    }

    public readonly struct Or : IBinaryOp
    {
        public static bool WritesResult => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint dst, uint src)
            where TW : IWidth => Logic<TW>(cpu, dst | src);
    }

    public readonly struct Xor : IBinaryOp
    {
        public static bool WritesResult => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint dst, uint src)
            where TW : IWidth => Logic<TW>(cpu, dst ^ src);
    }

    public readonly struct Test : IBinaryOp
    {
        public static bool WritesResult => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint dst, uint src)
            where TW : IWidth => Logic<TW>(cpu, dst & src);
    }

    /// <summary>Flags of a logical result: CF = OF = 0, AF = 0 (QEMU), SF ZF PF from the result.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Logic<TW>(Cpu cpu, uint result)
        where TW : IWidth
    {
        result &= TW.Mask;
        cpu.CcOp = FlagOp.Logic8 + TW.FlagOffset;
        cpu.CcDst = result;
        return result;
    }

    public readonly struct Inc : IUnaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint value)
            where TW : IWidth
        {
            uint carry = cpu.Carry();
            uint result = (value + 1) & TW.Mask;
            cpu.CcOp = FlagOp.Inc8 + TW.FlagOffset;
            cpu.CcDst = result;
            cpu.CcSrc = carry;
            return result;
        }
    }

    public readonly struct Dec : IUnaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint value)
            where TW : IWidth
        {
            uint carry = cpu.Carry();
            uint result = (value - 1) & TW.Mask;
            cpu.CcOp = FlagOp.Dec8 + TW.FlagOffset;
            cpu.CcDst = result;
            cpu.CcSrc = carry;
            return result;
        }
    }

    /// <summary>NEG: flags as 0 − value (CF set unless the value was 0).</summary>
    public readonly struct Neg : IUnaryOp
    {
        public static uint Apply<TW>(Cpu cpu, uint value)
            where TW : IWidth => Sub.Apply<TW>(cpu, 0, value);
    }

    public readonly struct Not : IUnaryOp
    {
        public static uint Apply<TW>(Cpu cpu, uint value)
            where TW : IWidth => ~value & TW.Mask;
    }
}
