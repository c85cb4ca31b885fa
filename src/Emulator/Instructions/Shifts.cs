using System.Runtime.CompilerServices;
using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// SHL/SAL SHR SAR ROL ROR RCL RCR (by 1, by an immediate, by CL) and SHLD SHRD. The count is masked to 5 bits, as
/// on the 80386. Flags follow QEMU's TCG (target/i386/tcg/translate.c) so that the bits Intel leaves undefined agree:
/// a shift by a masked count of 0 changes no flag; SHL records <see cref="FlagOp"/> Shl and SHR/SAR record Sar, with
/// CcSrc the value shifted by one less than the count; ROL/ROR record only CF and OF (<see cref="FlagOp.Adcox"/>);
/// RCL/RCR work as QEMU's helpers (count mod 9 or 17 for 8 and 16 bits, the flags materialized first).
/// </summary>
internal static unsafe class Shifts
{
    /// <summary>The 80386 masks every shift and rotate count to 5 bits.</summary>
    private const int CountMask = 0x1F;

    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Shl, BindShift<Shl>);
        table.Add(Mnemonic.Sal, BindShift<Shl>);
        table.Add(Mnemonic.Shr, BindShift<Shr>);
        table.Add(Mnemonic.Sar, BindShift<Sar>);
        table.Add(Mnemonic.Rol, BindShift<Rol>);
        table.Add(Mnemonic.Ror, BindShift<Ror>);
        table.Add(Mnemonic.Rcl, BindShift<Rcl>);
        table.Add(Mnemonic.Rcr, BindShift<Rcr>);
        table.Add(Mnemonic.Shld, BindDoubleShift<Left>);
        table.Add(Mnemonic.Shrd, BindDoubleShift<Right>);
    }

    private static bool BindShift<TOp>(in Instruction i, ref DecodedInstruction d, BindContext c)
        where TOp : IShiftOp
    {
        int size = Operands.SizeOf(in i, 0);
        bool memory = Operands.IsMemory(in i, 0);
        bool byCl = Operands.IsRegister(in i, 1);
        if (byCl && i.Op1Register != Iced.Intel.Register.CL)
        {
            return false;
        }

        d.Execute = (byCl, memory) switch
        {
            (false, false) => ShiftByWidth<TOp, Reg0, CountImm>(size),
            (false, true) => ShiftByWidth<TOp, Mem, CountImm>(size),
            (true, false) => ShiftByWidth<TOp, Reg0, CountCl>(size),
            (true, true) => ShiftByWidth<TOp, Mem, CountCl>(size),
        };
        return d.Execute != null;
    }

    private static delegate*<Cpu, ref DecodedInstruction, void> ShiftByWidth<TOp, TDst, TCount>(int size)
        where TOp : IShiftOp
        where TDst : IOperand
        where TCount : ICount => size switch
        {
            1 => &Shift<TOp, W8, TDst, TCount>.Run,
            2 => &Shift<TOp, W16, TDst, TCount>.Run,
            4 => &Shift<TOp, W32, TDst, TCount>.Run,
            _ => null,
        };

    private static bool BindDoubleShift<TDir>(in Instruction i, ref DecodedInstruction d, BindContext c)
        where TDir : IDirection
    {
        int size = Operands.SizeOf(in i, 0);
        bool memory = Operands.IsMemory(in i, 0);
        bool byCl = Operands.IsRegister(in i, 2);
        if (!Operands.IsRegister(in i, 1) || (byCl && i.Op2Register != Iced.Intel.Register.CL))
        {
            return false;
        }

        d.Execute = (size, memory, byCl) switch
        {
            (2, false, false) => &DoubleShift<TDir, W16, Reg0, CountImm>.Run,
            (2, true, false) => &DoubleShift<TDir, W16, Mem, CountImm>.Run,
            (2, false, true) => &DoubleShift<TDir, W16, Reg0, CountCl>.Run,
            (2, true, true) => &DoubleShift<TDir, W16, Mem, CountCl>.Run,
            (4, false, false) => &DoubleShift<TDir, W32, Reg0, CountImm>.Run,
            (4, true, false) => &DoubleShift<TDir, W32, Mem, CountImm>.Run,
            (4, false, true) => &DoubleShift<TDir, W32, Reg0, CountCl>.Run,
            (4, true, true) => &DoubleShift<TDir, W32, Mem, CountCl>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    /// <summary>Where the count comes from: the immediate (1 for the D0–D3 "by 1" forms, as Iced decodes them) or CL.</summary>
    public interface ICount
    {
        static abstract uint Get(Cpu cpu, ref DecodedInstruction d);
    }

    public readonly struct CountImm : ICount
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Get(Cpu cpu, ref DecodedInstruction d) => d.Imm;
    }

    public readonly struct CountCl : ICount
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Get(Cpu cpu, ref DecodedInstruction d) => cpu.Regs[RegisterIndex.Ecx];
    }

    /// <summary>One shift or rotate: the result of shifting <c>value</c> (of width TW) by <c>count</c> (0–31), flags recorded.</summary>
    public interface IShiftOp
    {
        static abstract uint Apply<TW>(Cpu cpu, uint value, int count)
            where TW : IWidth;
    }

    /// <summary>
    /// The destination is read, shifted and written back even for a count of 0 (QEMU stores unconditionally, so a
    /// read-only destination faults the same way).
    /// </summary>
    internal static class Shift<TOp, TW, TDst, TCount>
        where TOp : IShiftOp
        where TW : IWidth
        where TDst : IOperand
        where TCount : ICount
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            int count = (int)(TCount.Get(cpu, ref d) & CountMask);
            if (typeof(TDst) == typeof(Mem))
            {
                uint address = cpu.Address(ref d);
                uint value = TW.Read(cpu, d.Segment, address);
                TW.Write(cpu, d.Segment, address, TOp.Apply<TW>(cpu, value, count));
            }
            else
            {
                TW.SetReg(cpu, d.R0, TOp.Apply<TW>(cpu, TW.GetReg(cpu, d.R0), count));
            }
        }
    }

    public readonly struct Shl : IShiftOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint value, int count)
            where TW : IWidth
        {
            if (count == 0)
            {
                return value;
            }

            uint result = (value << count) & TW.Mask;
            cpu.CcOp = FlagOp.Shl8 + TW.FlagOffset;
            cpu.CcDst = result;
            cpu.CcSrc = value << (count - 1);
            return result;
        }
    }

    /// <summary>SHR: QEMU records it as a SAR (CF is the low bit of the value shifted by count − 1).</summary>
    public readonly struct Shr : IShiftOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint value, int count)
            where TW : IWidth
        {
            if (count == 0)
            {
                return value;
            }

            uint result = value >> count;
            cpu.CcOp = FlagOp.Sar8 + TW.FlagOffset;
            cpu.CcDst = result;
            cpu.CcSrc = value >> (count - 1);
            return result;
        }
    }

    public readonly struct Sar : IShiftOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint value, int count)
            where TW : IWidth
        {
            if (count == 0)
            {
                return value;
            }

            int signed = (int)TW.SignExtend(value);
            uint result = (uint)(signed >> count) & TW.Mask;
            cpu.CcOp = FlagOp.Sar8 + TW.FlagOffset;
            cpu.CcDst = result;
            cpu.CcSrc = (uint)(signed >> (count - 1));
            return result;
        }
    }

    /// <summary>
    /// ROL: rotates by the count modulo the width, but any non-zero (5-bit) count sets CF (the new low bit) and OF
    /// (new top bit xor CF), even a multiple of the width; the other flags stay (<see cref="FlagOp.Adcox"/>).
    /// </summary>
    public readonly struct Rol : IShiftOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint value, int count)
            where TW : IWidth
        {
            if (count == 0)
            {
                return value;
            }

            int bits = TW.Size * 8;
            uint result = RotateLeft<TW>(value, count);
            uint carry = result & 1;
            SetCarryOverflow(cpu, carry, ((result >> (bits - 1)) & 1) ^ carry);
            return result;
        }
    }

    /// <summary>ROR: as <see cref="Rol"/>; CF is the new top bit, OF the xor of the two top bits.</summary>
    public readonly struct Ror : IShiftOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint value, int count)
            where TW : IWidth
        {
            if (count == 0)
            {
                return value;
            }

            int bits = TW.Size * 8;
            uint result = RotateRight<TW>(value, count);
            uint carry = (result >> (bits - 1)) & 1;
            SetCarryOverflow(cpu, carry, ((result >> (bits - 2)) & 1) ^ carry);
            return result;
        }
    }

    /// <summary>
    /// ROL whose flags the next instruction of the block overwrites unread (<see cref="Decoding.FlagLiveness"/>): the
    /// rotated value alone. Setting CF and OF would mean materializing the other four flags first, the costliest
    /// part of a rotate, for nothing.
    /// </summary>
    public readonly struct RolFlagsUnread : IShiftOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint value, int count)
            where TW : IWidth => count == 0 ? value : RotateLeft<TW>(value, count);
    }

    /// <summary>ROR as <see cref="RolFlagsUnread"/>.</summary>
    public readonly struct RorFlagsUnread : IShiftOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Apply<TW>(Cpu cpu, uint value, int count)
            where TW : IWidth => count == 0 ? value : RotateRight<TW>(value, count);
    }

    /// <summary>The value rotated left by a non-zero 5-bit count modulo the width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint RotateLeft<TW>(uint value, int count)
        where TW : IWidth
    {
        int bits = TW.Size * 8;
        int n = count & (bits - 1);

        // For 32 bits and n = 0, C# masks the shift by 32 to 0: value | value. For 8/16 bits value >> bits is 0.
        return ((value << n) | (value >> (bits - n))) & TW.Mask;
    }

    /// <summary>The value rotated right by a non-zero 5-bit count modulo the width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint RotateRight<TW>(uint value, int count)
        where TW : IWidth
    {
        int bits = TW.Size * 8;
        int n = count & (bits - 1);
        return ((value >> n) | (value << (bits - n))) & TW.Mask;
    }

    /// <summary>QEMU's CC_OP_ADCOX as ROL/ROR use it: the other flags materialized, CF and OF replaced.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetCarryOverflow(Cpu cpu, uint carry, uint overflow)
    {
        cpu.MaterializeFlags();
        cpu.CcOp = FlagOp.Adcox;
        cpu.CcDst = carry;
        cpu.CcSrc2 = overflow;
    }

    /// <summary>
    /// The rotate-through-carry count: 5 bits, then modulo 9 (8-bit) or 17 (16-bit), the width plus CF. The 32-bit
    /// rotate is through 33 bits, but a 5-bit count never reaches 33.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RotateThroughCarryCount<TW>(int count)
        where TW : IWidth => TW.Size switch
        {
            1 => count % 9,
            2 => count % 17,
            _ => count,
        };

    /// <summary>RCL (QEMU's helper_rcl): OF = top bit of the value xor of the result, also for counts other than 1.</summary>
    public readonly struct Rcl : IShiftOp
    {
        public static uint Apply<TW>(Cpu cpu, uint value, int count)
            where TW : IWidth
        {
            // QEMU computes EFLAGS before the helper whatever the count: the flags end up materialized either way.
            uint flags = cpu.MaterializeFlags();
            int n = RotateThroughCarryCount<TW>(count);
            if (n == 0)
            {
                return value;
            }

            int bits = TW.Size * 8;
            ulong source = value;
            ulong rotated = (source << n) | ((ulong)(flags & LazyFlags.CF) << (n - 1));
            if (n > 1)
            {
                rotated |= source >> (bits + 1 - n);
            }

            uint carry = (uint)(source >> (bits - n)) & 1;
            uint overflow = (uint)((source ^ rotated) >> (bits - 1)) & 1;
            cpu.CcSrc = (flags & ~(LazyFlags.CF | LazyFlags.OF)) | carry | (overflow != 0 ? LazyFlags.OF : 0);
            return (uint)rotated & TW.Mask;
        }
    }

    /// <summary>RCR (QEMU's helper_rcr).</summary>
    public readonly struct Rcr : IShiftOp
    {
        public static uint Apply<TW>(Cpu cpu, uint value, int count)
            where TW : IWidth
        {
            uint flags = cpu.MaterializeFlags();
            int n = RotateThroughCarryCount<TW>(count);
            if (n == 0)
            {
                return value;
            }

            int bits = TW.Size * 8;
            ulong source = value;
            ulong rotated = (source >> n) | ((ulong)(flags & LazyFlags.CF) << (bits - n));
            if (n > 1)
            {
                rotated |= source << (bits + 1 - n);
            }

            uint carry = (uint)(source >> (n - 1)) & 1;
            uint overflow = (uint)((source ^ rotated) >> (bits - 1)) & 1;
            cpu.CcSrc = (flags & ~(LazyFlags.CF | LazyFlags.OF)) | carry | (overflow != 0 ? LazyFlags.OF : 0);
            return (uint)rotated & TW.Mask;
        }
    }

    /// <summary>SHLD or SHRD.</summary>
    public interface IDirection
    {
        static abstract uint Apply<TW>(Cpu cpu, uint dst, uint src, int count)
            where TW : IWidth;
    }

    /// <summary>
    /// The 16-bit operand as QEMU concatenates it (gen_shiftd_rm_T1) for SHLD and SHRD alike: dst:src:dst in 48 bits,
    /// which makes a count above 16 shift src and then dst in again, as Intel's parts do. (32-bit operands are
    /// simply dst:src for SHLD and src:dst for SHRD.)
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong DstSrcDst(uint dst, uint src) => ((ulong)dst << 32) | ((ulong)src << 16) | dst;

    public readonly struct Left : IDirection
    {
        public static uint Apply<TW>(Cpu cpu, uint dst, uint src, int count)
            where TW : IWidth
        {
            if (count == 0)
            {
                return dst;
            }

            // The result is the high half of the 64-bit value shifted left.
            ulong value = TW.Size == 2 ? DstSrcDst(dst, src) : ((ulong)dst << 32) | src;
            uint result = (uint)((value << count) >> 32) & TW.Mask;
            cpu.CcOp = FlagOp.Shl8 + TW.FlagOffset;
            cpu.CcDst = result;
            cpu.CcSrc = (uint)((value << (count - 1)) >> 32);
            return result;
        }
    }

    public readonly struct Right : IDirection
    {
        public static uint Apply<TW>(Cpu cpu, uint dst, uint src, int count)
            where TW : IWidth
        {
            if (count == 0)
            {
                return dst;
            }

            ulong value = TW.Size == 2 ? DstSrcDst(dst, src) : ((ulong)src << 32) | dst;
            uint result = (uint)(value >> count) & TW.Mask;
            cpu.CcOp = FlagOp.Sar8 + TW.FlagOffset;
            cpu.CcDst = result;
            cpu.CcSrc = (uint)(value >> (count - 1));
            return result;
        }
    }

    /// <summary>SHLD/SHRD r/m, r, imm8|CL: the register in <see cref="DecodedInstruction.R1"/> supplies the bits shifted in.</summary>
    private static class DoubleShift<TDir, TW, TDst, TCount>
        where TDir : IDirection
        where TW : IWidth
        where TDst : IOperand
        where TCount : ICount
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            int count = (int)(TCount.Get(cpu, ref d) & CountMask);
            uint src = TW.GetReg(cpu, d.R1);
            if (typeof(TDst) == typeof(Mem))
            {
                uint address = cpu.Address(ref d);
                uint value = TW.Read(cpu, d.Segment, address);
                TW.Write(cpu, d.Segment, address, TDir.Apply<TW>(cpu, value, src, count));
            }
            else
            {
                TW.SetReg(cpu, d.R0, TDir.Apply<TW>(cpu, TW.GetReg(cpu, d.R0), src, count));
            }
        }
    }
}
