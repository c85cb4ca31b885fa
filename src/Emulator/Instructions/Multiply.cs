using System.Runtime.CompilerServices;
using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// MUL, IMUL (one, two and three operands), DIV, IDIV. Multiplies record <see cref="FlagOp"/> Mul with QEMU's CcDst
/// (the low product, or for 8 and 16 bits the whole product) and CcSrc (non-zero exactly when CF = OF = 1), so SF ZF
/// PF, which Intel leaves undefined, come out as QEMU's. Divides leave the flags as they were (QEMU does) and raise
/// #DE for a zero divisor or a quotient that does not fit before they change anything.
/// </summary>
/// <remarks>
/// The accumulator forms differ by width in where the result goes (AX, DX:AX, EDX:EAX); they test
/// <c>TW.Size</c>, which is a constant in each generic instantiation, so the JIT keeps one branch and no width test
/// runs at execution time.
/// </remarks>
internal static unsafe class Multiply
{
    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Mul, BindAccumulator<Unsigned>);
        table.Add(Mnemonic.Div, BindDivide<Unsigned>);
        table.Add(Mnemonic.Idiv, BindDivide<Signed>);
        table.Add(Mnemonic.Imul, BindSignedMultiply);
    }

    private static bool BindAccumulator<TSign>(in Instruction i, ref DecodedInstruction d, BindContext c)
        where TSign : ISignedness
    {
        bool memory = Operands.IsMemory(in i, 0);
        d.Execute = (Operands.SizeOf(in i, 0), memory) switch
        {
            (1, false) => &AccumulatorMultiply<TSign, W8, Reg0>.Run,
            (2, false) => &AccumulatorMultiply<TSign, W16, Reg0>.Run,
            (4, false) => &AccumulatorMultiply<TSign, W32, Reg0>.Run,
            (1, true) => &AccumulatorMultiply<TSign, W8, Mem>.Run,
            (2, true) => &AccumulatorMultiply<TSign, W16, Mem>.Run,
            (4, true) => &AccumulatorMultiply<TSign, W32, Mem>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    private static bool BindDivide<TSign>(in Instruction i, ref DecodedInstruction d, BindContext c)
        where TSign : ISignedness
    {
        bool memory = Operands.IsMemory(in i, 0);
        d.Execute = (Operands.SizeOf(in i, 0), memory) switch
        {
            (1, false) => &Divide<TSign, W8, Reg0>.Run,
            (2, false) => &Divide<TSign, W16, Reg0>.Run,
            (4, false) => &Divide<TSign, W32, Reg0>.Run,
            (1, true) => &Divide<TSign, W8, Mem>.Run,
            (2, true) => &Divide<TSign, W16, Mem>.Run,
            (4, true) => &Divide<TSign, W32, Mem>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    /// <summary>IMUL r/m (accumulator); IMUL r, r/m (the register is also a factor); IMUL r, r/m, imm.</summary>
    private static bool BindSignedMultiply(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        if (i.OpCount == 1)
        {
            return BindAccumulator<Signed>(in i, ref d, c);
        }

        int size = Operands.SizeOf(in i, 0);
        bool memory = Operands.IsMemory(in i, 1);
        d.Execute = (i.OpCount, size, memory) switch
        {
            (2, 2, false) => &TruncatingMultiply<W16, Reg0, Reg1>.Run,
            (2, 2, true) => &TruncatingMultiply<W16, Reg0, Mem>.Run,
            (2, 4, false) => &TruncatingMultiply<W32, Reg0, Reg1>.Run,
            (2, 4, true) => &TruncatingMultiply<W32, Reg0, Mem>.Run,
            (3, 2, false) => &TruncatingMultiply<W16, Reg1, Imm>.Run,
            (3, 2, true) => &TruncatingMultiply<W16, Mem, Imm>.Run,
            (3, 4, false) => &TruncatingMultiply<W32, Reg1, Imm>.Run,
            (3, 4, true) => &TruncatingMultiply<W32, Mem, Imm>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    public interface ISignedness
    {
        /// <summary>A value of width TW extended to 64 bits, by zero or by sign.</summary>
        static abstract long Extend<TW>(uint value)
            where TW : IWidth;
    }

    public readonly struct Unsigned : ISignedness
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static long Extend<TW>(uint value)
            where TW : IWidth => value & TW.Mask;
    }

    public readonly struct Signed : ISignedness
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static long Extend<TW>(uint value)
            where TW : IWidth => (int)TW.SignExtend(value & TW.Mask);
    }

    /// <summary>
    /// MUL/IMUL r/m: AX = AL × src, DX:AX = AX × src, EDX:EAX = EAX × src. CcSrc is QEMU's: for MUL the high part
    /// (AH's bits in place for 8 bits), for IMUL the difference between the product and its low part sign-extended.
    /// </summary>
    private static class AccumulatorMultiply<TSign, TW, TSrc>
        where TSign : ISignedness
        where TW : IWidth
        where TSrc : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            long product = TSign.Extend<TW>(TSrc.Read<TW>(cpu, ref d)) * TSign.Extend<TW>(TW.GetReg(cpu, RegisterIndex.Eax));
            uint low = (uint)product;
            uint high = (uint)(product >> 32);
            bool signed = typeof(TSign) == typeof(Signed);
            uint significant;
            if (TW.Size == 1)
            {
                cpu.SetReg16(RegisterIndex.Eax, (ushort)low);
                significant = signed ? (uint)(product - (sbyte)product) : low & 0xFF00;
            }
            else if (TW.Size == 2)
            {
                cpu.SetReg16(RegisterIndex.Eax, (ushort)low);
                cpu.SetReg16(RegisterIndex.Edx, (ushort)(low >> 16));
                significant = signed ? (uint)(product - (short)product) : low >> 16;
            }
            else
            {
                cpu.Regs[RegisterIndex.Eax] = low;
                cpu.Regs[RegisterIndex.Edx] = high;
                significant = signed ? (uint)(((int)low >> 31) - (int)high) : high;
            }

            cpu.CcOp = FlagOp.Mul8 + TW.FlagOffset;
            cpu.CcDst = low;
            cpu.CcSrc = significant;
        }
    }

    /// <summary>
    /// IMUL r, r/m and IMUL r, r/m, imm: R0 = TA × TB cut to the width; CF = OF = the product did not fit. For 16 bits
    /// QEMU keeps the whole 32-bit product in CcDst (only its low half counts for SF ZF PF).
    /// </summary>
    private static class TruncatingMultiply<TW, TA, TB>
        where TW : IWidth
        where TA : IOperand
        where TB : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            long product = Signed.Extend<TW>(TA.Read<TW>(cpu, ref d)) * Signed.Extend<TW>(TB.Read<TW>(cpu, ref d));
            uint low = (uint)product;
            TW.SetReg(cpu, d.R0, low);
            cpu.CcOp = FlagOp.Mul8 + TW.FlagOffset;
            cpu.CcDst = low;
            cpu.CcSrc = TW.Size == 2
                ? (uint)(product - (short)product)
                : (uint)(((int)low >> 31) - (int)(product >> 32));
        }
    }

    /// <summary>
    /// DIV/IDIV r/m: AX / src → AL quotient, AH remainder; DX:AX / src → AX, DX; EDX:EAX / src → EAX, EDX. The
    /// remainder has the dividend's sign (truncating division, as C#'s). Flags are untouched.
    /// </summary>
    private static class Divide<TSign, TW, TSrc>
        where TSign : ISignedness
        where TW : IWidth
        where TSrc : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            long divisor = TSign.Extend<TW>(TSrc.Read<TW>(cpu, ref d));
            if (divisor == 0)
            {
                throw new CpuException(ExceptionVector.DivideError);
            }

            bool signed = typeof(TSign) == typeof(Signed);
            uint eax = cpu.Regs[RegisterIndex.Eax];
            uint edx = cpu.Regs[RegisterIndex.Edx];
            long quotient;
            long remainder;
            if (TW.Size == 4)
            {
                ulong dividend = ((ulong)edx << 32) | eax;
                if (signed)
                {
                    // long.MinValue / -1 overflows in C# as on x86; its quotient does not fit 32 bits either way.
                    if ((long)dividend == long.MinValue && divisor == -1)
                    {
                        throw new CpuException(ExceptionVector.DivideError);
                    }

                    quotient = Math.DivRem((long)dividend, divisor, out remainder);
                }
                else
                {
                    (ulong unsignedQuotient, ulong unsignedRemainder) = Math.DivRem(dividend, (ulong)divisor);
                    if (unsignedQuotient > uint.MaxValue)
                    {
                        throw new CpuException(ExceptionVector.DivideError);
                    }

                    quotient = (long)unsignedQuotient;
                    remainder = (long)unsignedRemainder;
                }
            }
            else
            {
                // AX for 8 bits, DX:AX for 16: twice the operand width, extended to 64 bits so no C# overflow.
                uint raw = TW.Size == 1 ? eax & 0xFFFF : (eax & 0xFFFF) | (edx << 16);
                long dividend = signed ? (TW.Size == 1 ? (short)raw : (int)raw) : raw;
                quotient = Math.DivRem(dividend, divisor, out remainder);
            }

            bool fits = signed
                ? TSign.Extend<TW>((uint)quotient) == quotient
                : (ulong)quotient <= TW.Mask;
            if (!fits)
            {
                throw new CpuException(ExceptionVector.DivideError);
            }

            if (TW.Size == 1)
            {
                cpu.SetReg16(RegisterIndex.Eax, (ushort)(((uint)remainder & 0xFF) << 8 | ((uint)quotient & 0xFF)));
            }
            else
            {
                TW.SetReg(cpu, RegisterIndex.Eax, (uint)quotient);
                TW.SetReg(cpu, RegisterIndex.Edx, (uint)remainder);
            }
        }
    }
}
