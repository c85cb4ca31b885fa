using System.Numerics;
using System.Runtime.CompilerServices;
using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// BT BTS BTR BTC (bit offset in a register or an imm8) and BSF BSR. A memory operand with a register bit offset
/// addresses beyond the operand as the 80386 does: the offset is signed and its high bits select the word or dword,
/// an imm8 offset is taken modulo the width. Flags are QEMU's (translate.c): see <see cref="SetBitTestFlags"/> and
/// <see cref="BitScan{TDir, TW, TSrc}"/>.
/// </summary>
internal static unsafe class BitOps
{
    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Bt, BindBitTest<Bt>);
        table.Add(Mnemonic.Bts, BindBitTest<Bts>);
        table.Add(Mnemonic.Btr, BindBitTest<Btr>);
        table.Add(Mnemonic.Btc, BindBitTest<Btc>);
        table.Add(Mnemonic.Bsf, BindBitScan<Forward>);
        table.Add(Mnemonic.Bsr, BindBitScan<Reverse>);
    }

    private static bool BindBitTest<TOp>(in Instruction i, ref DecodedInstruction d, BindContext c)
        where TOp : IBitOp
    {
        bool memory = Operands.IsMemory(in i, 0);
        bool byRegister = Operands.IsRegister(in i, 1);
        d.Execute = (Operands.SizeOf(in i, 0), memory, byRegister) switch
        {
            (2, false, false) => &BitTestRegister<TOp, W16, Imm>.Run,
            (2, false, true) => &BitTestRegister<TOp, W16, Reg1>.Run,
            (2, true, false) => &BitTestMemory<TOp, W16, Imm>.Run,
            (2, true, true) => &BitTestMemory<TOp, W16, Reg1>.Run,
            (4, false, false) => &BitTestRegister<TOp, W32, Imm>.Run,
            (4, false, true) => &BitTestRegister<TOp, W32, Reg1>.Run,
            (4, true, false) => &BitTestMemory<TOp, W32, Imm>.Run,
            (4, true, true) => &BitTestMemory<TOp, W32, Reg1>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    private static bool BindBitScan<TDir>(in Instruction i, ref DecodedInstruction d, BindContext c)
        where TDir : IScanDirection
    {
        bool memory = Operands.IsMemory(in i, 1);
        d.Execute = (Operands.SizeOf(in i, 0), memory) switch
        {
            (2, false) => &BitScan<TDir, W16, Reg1>.Run,
            (2, true) => &BitScan<TDir, W16, Mem>.Run,
            (4, false) => &BitScan<TDir, W32, Reg1>.Run,
            (4, true) => &BitScan<TDir, W32, Mem>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    /// <summary>What BT, BTS, BTR, BTC do to the tested bit.</summary>
    public interface IBitOp
    {
        /// <summary>BT only reads.</summary>
        static abstract bool WritesResult { get; }

        static abstract uint Apply(uint value, uint bit);
    }

    public readonly struct Bt : IBitOp
    {
        public static bool WritesResult => false;

        public static uint Apply(uint value, uint bit) => value;
    }

    public readonly struct Bts : IBitOp
    {
        public static bool WritesResult => true;

        public static uint Apply(uint value, uint bit) => value | bit;
    }

    public readonly struct Btr : IBitOp
    {
        public static bool WritesResult => true;

        public static uint Apply(uint value, uint bit) => value & ~bit;
    }

    public readonly struct Btc : IBitOp
    {
        public static bool WritesResult => true;

        public static uint Apply(uint value, uint bit) => value ^ bit;
    }

    /// <summary>
    /// BTx on a register. The value shifted for the flags is the whole 32-bit register even for a 16-bit operand:
    /// QEMU shifts the full register there, and its bits above 15 reach OF when the flags become a SAR (below).
    /// </summary>
    private static class BitTestRegister<TOp, TW, TOffset>
        where TOp : IBitOp
        where TW : IWidth
        where TOffset : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            int offset = (int)(TOffset.Read<W32>(cpu, ref d) & (uint)(TW.Size * 8 - 1));
            uint whole = cpu.Regs[d.R0];
            if (TOp.WritesResult)
            {
                TW.SetReg(cpu, d.R0, TOp.Apply(whole, 1u << offset));
            }

            SetBitTestFlags(cpu, whole >> offset);
        }
    }

    /// <summary>
    /// BTx on memory. A register offset is sign-extended from the operand width; its part above the bit index moves
    /// the address by whole operands (within the address size: 16-bit addressing wraps at 64 KiB).
    /// </summary>
    private static class BitTestMemory<TOp, TW, TOffset>
        where TOp : IBitOp
        where TW : IWidth
        where TOffset : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            int bits = TW.Size * 8;
            uint address = cpu.Address(ref d);
            uint offset;
            if (typeof(TOffset) == typeof(Reg1))
            {
                offset = TW.SignExtend(TW.GetReg(cpu, d.R1));
                int indexShift = TW.Size == 2 ? 4 : 5;
                address = (address + (uint)(((int)offset >> indexShift) * TW.Size)) & d.AddressMask;
            }
            else
            {
                offset = d.Imm;
            }

            int bit = (int)(offset & (uint)(bits - 1));
            uint value = TW.Read(cpu, d.Segment, address);
            if (TOp.WritesResult)
            {
                TW.Write(cpu, d.Segment, address, TOp.Apply(value, 1u << bit));
            }

            SetBitTestFlags(cpu, value >> bit);
        }
    }

    /// <summary>
    /// CF = the tested bit (low bit of <paramref name="shifted"/>); the other flags are undefined and become QEMU's:
    /// when the last operation kept its result in CcDst (MUL … SAR), ZF stays what it was by keeping CcDst and
    /// switching to the SAR operation of the same width with CcSrc = the shifted value (so SF and PF stay, OF and AF
    /// come out of the SAR formula); otherwise the flags are materialized and CF replaced.
    /// </summary>
    /// <remarks>
    /// QEMU decides this at translation time from the cc_op it knows statically; when it does not know it (at the start
    /// of a translation block, after a shift by CL) it takes the second way, and after XOR r,r (its CC_OP_CLR) too.
    /// This CPU always knows the operation, so there OF and AF may differ from QEMU's; CF, ZF, SF, PF never do.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetBitTestFlags(Cpu cpu, uint shifted)
    {
        FlagOp op = cpu.CcOp;
        if (op >= FlagOp.Mul8 && op <= FlagOp.Sar32)
        {
            cpu.CcOp = FlagOp.Sar8 + (byte)(LazyFlags.BitsOf(op) >> 4);
            cpu.CcSrc = shifted;
        }
        else
        {
            cpu.CcSrc = (cpu.MaterializeFlags() & ~LazyFlags.CF) | (shifted & 1);
        }
    }

    public interface IScanDirection
    {
        /// <summary>The index of the lowest (BSF) or highest (BSR) set bit of a non-zero value.</summary>
        static abstract uint Index(uint value);
    }

    public readonly struct Forward : IScanDirection
    {
        public static uint Index(uint value) => (uint)BitOperations.TrailingZeroCount(value);
    }

    public readonly struct Reverse : IScanDirection
    {
        public static uint Index(uint value) => (uint)BitOperations.Log2(value);
    }

    /// <summary>
    /// BSF/BSR: ZF = the source is zero. QEMU records a logical operation on the source (so SF and PF are the source's,
    /// CF OF AF clear) and leaves the destination unchanged for a zero source, as real processors do.
    /// </summary>
    private static class BitScan<TDir, TW, TSrc>
        where TDir : IScanDirection
        where TW : IWidth
        where TSrc : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            uint source = TSrc.Read<TW>(cpu, ref d);
            if (source != 0)
            {
                TW.SetReg(cpu, d.R0, TDir.Index(source));
            }

            cpu.CcOp = FlagOp.Logic8 + TW.FlagOffset;
            cpu.CcDst = source;
        }
    }
}
