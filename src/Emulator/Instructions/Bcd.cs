using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// The decimal adjustments: DAA DAS (packed BCD in AL), AAA AAS (unpacked, AL and AH), AAM AAD (with any base; AAM 0
/// raises #DE). Results and flags are QEMU's helpers' (target/i386/tcg/int_helper.c): DAA/DAS set all six flags (OF
/// cleared); AAA/AAS change only CF and AF; AAM/AAD set flags as a logical operation on the new AL.
/// </summary>
internal static unsafe class Bcd
{
    /// <summary>AH's byte offset in the register file.</summary>
    private const int Ah = 1;

    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Daa, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Daa));
        table.Add(Mnemonic.Das, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Das));
        table.Add(Mnemonic.Aaa, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Aaa));
        table.Add(Mnemonic.Aas, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Aas));
        table.Add(Mnemonic.Aam, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Aam));
        table.Add(Mnemonic.Aad, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Aad));
    }

    /// <summary>SF ZF PF of a byte result (DAA/DAS compute them by hand, as QEMU does).</summary>
    private static uint ResultFlags(uint al) =>
        (al == 0 ? LazyFlags.ZF : 0) | LazyFlags.Parity(al) | (al & 0x80 /* SF is bit 7, as in AL */);

    private static void Daa(Cpu cpu, ref DecodedInstruction d)
    {
        uint before = cpu.MaterializeFlags();
        uint oldAl = cpu.GetReg8(0);
        uint al = oldAl;
        uint flags = 0;
        if ((al & 0x0F) > 9 || (before & LazyFlags.AF) != 0)
        {
            al = (al + 6) & 0xFF;
            flags |= LazyFlags.AF;
        }

        // The high digit is judged on the AL from before the low adjustment, and on the CF from before.
        if (oldAl > 0x99 || (before & LazyFlags.CF) != 0)
        {
            al = (al + 0x60) & 0xFF;
            flags |= LazyFlags.CF;
        }

        cpu.SetReg8(0, (byte)al);
        cpu.CcSrc = flags | ResultFlags(al);
    }

    private static void Das(Cpu cpu, ref DecodedInstruction d)
    {
        uint before = cpu.MaterializeFlags();
        uint oldAl = cpu.GetReg8(0);
        uint al = oldAl;
        uint flags = 0;
        if ((al & 0x0F) > 9 || (before & LazyFlags.AF) != 0)
        {
            flags |= LazyFlags.AF;
            if (al < 6 || (before & LazyFlags.CF) != 0)
            {
                flags |= LazyFlags.CF;
            }

            al = (al - 6) & 0xFF;
        }

        if (oldAl > 0x99 || (before & LazyFlags.CF) != 0)
        {
            al = (al - 0x60) & 0xFF;
            flags |= LazyFlags.CF;
        }

        cpu.SetReg8(0, (byte)al);
        cpu.CcSrc = flags | ResultFlags(al);
    }

    /// <summary>AAA: as AX + 0x106 when adjusting (AH gets the carry out of AL too), then AL keeps its low digit.</summary>
    private static void Aaa(Cpu cpu, ref DecodedInstruction d)
    {
        uint flags = cpu.MaterializeFlags();
        uint al = cpu.GetReg8(0);
        uint ah = cpu.GetReg8(Ah);
        if ((al & 0x0F) > 9 || (flags & LazyFlags.AF) != 0)
        {
            ah = ah + 1 + (al > 0xF9 ? 1u : 0);
            al = (al + 6) & 0x0F;
            flags |= LazyFlags.CF | LazyFlags.AF;
        }
        else
        {
            al &= 0x0F;
            flags &= ~(LazyFlags.CF | LazyFlags.AF);
        }

        cpu.SetReg16(RegisterIndex.Eax, (ushort)(((ah & 0xFF) << 8) | al));
        cpu.CcSrc = flags;
    }

    /// <summary>AAS: as AX − 6 then AH − 1 when adjusting (AH also takes the borrow out of AL).</summary>
    private static void Aas(Cpu cpu, ref DecodedInstruction d)
    {
        uint flags = cpu.MaterializeFlags();
        uint al = cpu.GetReg8(0);
        uint ah = cpu.GetReg8(Ah);
        if ((al & 0x0F) > 9 || (flags & LazyFlags.AF) != 0)
        {
            ah = ah - 1 - (al < 6 ? 1u : 0);
            al = (al - 6) & 0x0F;
            flags |= LazyFlags.CF | LazyFlags.AF;
        }
        else
        {
            al &= 0x0F;
            flags &= ~(LazyFlags.CF | LazyFlags.AF);
        }

        cpu.SetReg16(RegisterIndex.Eax, (ushort)(((ah & 0xFF) << 8) | al));
        cpu.CcSrc = flags;
    }

    /// <summary>AAM base: AH = AL / base, AL = AL mod base; a base of 0 is a divide error.</summary>
    private static void Aam(Cpu cpu, ref DecodedInstruction d)
    {
        uint divisor = d.Imm & 0xFF;
        if (divisor == 0)
        {
            throw new CpuException(ExceptionVector.DivideError);
        }

        uint al = cpu.GetReg8(0);
        uint remainder = al % divisor;
        cpu.SetReg16(RegisterIndex.Eax, (ushort)(((al / divisor) << 8) | remainder));
        SetLogicFlags(cpu, remainder);
    }

    /// <summary>AAD base: AL = AH × base + AL (mod 256), AH = 0.</summary>
    private static void Aad(Cpu cpu, ref DecodedInstruction d)
    {
        uint al = ((cpu.GetReg8(Ah) * (d.Imm & 0xFF)) + cpu.GetReg8(0)) & 0xFF;
        cpu.SetReg16(RegisterIndex.Eax, (ushort)al);
        SetLogicFlags(cpu, al);
    }

    private static void SetLogicFlags(Cpu cpu, uint al)
    {
        cpu.CcOp = FlagOp.Logic8;
        cpu.CcDst = al;
    }
}
