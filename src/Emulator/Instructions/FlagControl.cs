using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// Instructions that read or write EFLAGS as such: CLC STC CMC CLD STD CLI STI, PUSHF/POPF, LAHF/SAHF, SETcc.
/// </summary>
internal static unsafe class FlagControl
{
    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Clc, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Clc));
        table.Add(Mnemonic.Stc, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Stc));
        table.Add(Mnemonic.Cmc, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Cmc));
        table.Add(Mnemonic.Cld, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Cld));
        table.Add(Mnemonic.Std, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Std));
        table.Add(Mnemonic.Cli, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Cli));
        table.Add(Mnemonic.Sti, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Sti));
        table.Add(Mnemonic.Lahf, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Lahf));
        table.Add(Mnemonic.Sahf, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Sahf));
        table.Add(Mnemonic.Pushf, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Pushf16));
        table.Add(Mnemonic.Pushfd, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Pushf32));
        table.Add(Mnemonic.Popf, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Popf16));
        table.Add(Mnemonic.Popfd, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Popf32));
        foreach (Mnemonic set in (ReadOnlySpan<Mnemonic>)[
            Mnemonic.Seto, Mnemonic.Setno, Mnemonic.Setb, Mnemonic.Setae, Mnemonic.Sete, Mnemonic.Setne, Mnemonic.Setbe,
            Mnemonic.Seta, Mnemonic.Sets, Mnemonic.Setns, Mnemonic.Setp, Mnemonic.Setnp, Mnemonic.Setl, Mnemonic.Setge,
            Mnemonic.Setle, Mnemonic.Setg])
        {
            table.Add(set, BindSet);
        }
    }

    /// <summary>Iced's condition code as this CPU numbers conditions (0 = O … 15 = G).</summary>
    public static byte ConditionOf(in Instruction i) => (byte)(i.ConditionCode - ConditionCode.o);

    private static bool BindSet(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        d.Extra = ConditionOf(in i);
        d.Execute = Operands.IsMemory(in i, 0) ? &SetMemory : &SetRegister;
        return true;
    }

    private static void SetRegister(Cpu cpu, ref DecodedInstruction d) => cpu.SetReg8(d.R0, cpu.Condition(d.Extra) ? (byte)1 : (byte)0);

    private static void SetMemory(Cpu cpu, ref DecodedInstruction d) =>
        cpu.Write8(d.Segment, cpu.Address(ref d), cpu.Condition(d.Extra) ? (byte)1 : (byte)0);

    private static void Clc(Cpu cpu, ref DecodedInstruction d) => cpu.CcSrc = cpu.MaterializeFlags() & ~LazyFlags.CF;

    private static void Stc(Cpu cpu, ref DecodedInstruction d) => cpu.CcSrc = cpu.MaterializeFlags() | LazyFlags.CF;

    private static void Cmc(Cpu cpu, ref DecodedInstruction d) => cpu.CcSrc = cpu.MaterializeFlags() ^ LazyFlags.CF;

    private static void Cld(Cpu cpu, ref DecodedInstruction d) => cpu.FlagsRest &= ~Cpu.DF;

    private static void Std(Cpu cpu, ref DecodedInstruction d) => cpu.FlagsRest |= Cpu.DF;

    private static void Cli(Cpu cpu, ref DecodedInstruction d)
    {
        RequireIopl(cpu);
        cpu.FlagsRest &= ~Cpu.IF;
    }

    /// <summary>STI: interrupts are held off for one more instruction when it sets IF; the block ends so that one runs next.</summary>
    private static void Sti(Cpu cpu, ref DecodedInstruction d)
    {
        RequireIopl(cpu);
        if ((cpu.FlagsRest & Cpu.IF) == 0)
        {
            cpu.InterruptShadow = Accelerator.State.VcpuEvents.ShadowSti;
        }

        cpu.FlagsRest |= Cpu.IF;
        cpu.Stop |= Cpu.StopAfter;
    }

    /// <summary>CLI and STI in protected mode need CPL ≤ IOPL.</summary>
    private static void RequireIopl(Cpu cpu)
    {
        if (cpu.ProtectedMode && cpu.Cpl > (int)((cpu.FlagsRest & Cpu.IoplMask) >> 12))
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }
    }

    private static void Lahf(Cpu cpu, ref DecodedInstruction d) => cpu.SetReg8(RegisterIndex.ByteOffset(4), (byte)(cpu.Eflags | 2));

    /// <summary>SAHF: SF ZF AF PF CF from AH; OF stays.</summary>
    private static void Sahf(Cpu cpu, ref DecodedInstruction d)
    {
        const uint fromAh = LazyFlags.SF | LazyFlags.ZF | LazyFlags.AF | LazyFlags.PF | LazyFlags.CF;
        uint flags = cpu.MaterializeFlags();
        cpu.CcSrc = (flags & ~fromAh) | (cpu.GetReg8(RegisterIndex.ByteOffset(4)) & fromAh);
    }

    /// <summary>PUSHF: the image has VM and RF clear.</summary>
    private static void Pushf16(Cpu cpu, ref DecodedInstruction d) => cpu.Push16((ushort)cpu.Eflags);

    private static void Pushf32(Cpu cpu, ref DecodedInstruction d) => cpu.Push32(cpu.Eflags & ~(Cpu.VM | Cpu.RF));

    private static void Popf16(Cpu cpu, ref DecodedInstruction d) => cpu.SetEflags(cpu.Pop16(), PopfWritable(cpu) & 0xFFFF);

    private static void Popf32(Cpu cpu, ref DecodedInstruction d) => cpu.SetEflags(cpu.Pop32(), PopfWritable(cpu));

    /// <summary>
    /// What POPF may change (QEMU's masks): at CPL 0 also IOPL and IF, at CPL ≤ IOPL also IF; never VM or RF. It
    /// may set IF or TF, so the block ends.
    /// </summary>
    public static uint PopfWritable(Cpu cpu)
    {
        cpu.Stop |= Cpu.StopAfter;
        uint writable = Cpu.TF | Cpu.AC | Cpu.ID | Cpu.NT;
        int iopl = (int)((cpu.FlagsRest & Cpu.IoplMask) >> 12);
        if (cpu.Cpl == 0)
        {
            writable |= Cpu.IoplMask | Cpu.IF;
        }
        else if (cpu.Cpl <= iopl)
        {
            writable |= Cpu.IF;
        }

        return writable;
    }
}
