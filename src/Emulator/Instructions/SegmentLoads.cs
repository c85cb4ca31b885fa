using Iced.Intel;
using Vmm.Accelerator.State;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// Loads and stores of the data segment registers: MOV Sreg, r/m16 and MOV r/m, Sreg, and the far-pointer loads
/// LDS LES LFS LGS LSS. Every load goes through <see cref="Cpu.LoadSegment"/>, so real mode changes only selector
/// and base (unreal mode's limits survive) and protected mode reads and checks the descriptor. CS is loaded only by
/// far transfers (<see cref="ControlFlow"/>).
/// </summary>
internal static unsafe class SegmentLoads
{
    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Les, BindFarPointer);
        table.Add(Mnemonic.Lds, BindFarPointer);
        table.Add(Mnemonic.Lss, BindFarPointer);
        table.Add(Mnemonic.Lfs, BindFarPointer);
        table.Add(Mnemonic.Lgs, BindFarPointer);
    }

    /// <summary>MOV to or from a segment register (called by <see cref="Moves"/>, which owns MOV).</summary>
    public static bool BindMov(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        if (Operands.IsRegister(in i, 0) && i.Op0Register.IsSegmentRegister())
        {
            // MOV CS, r/m is #UD (8E with reg = 1): CS changes only with a far transfer.
            if (d.R0 == SegmentIndex.Cs)
            {
                return false;
            }

            d.Execute = Operands.IsMemory(in i, 1) ? &Load<Mem> : &Load<Reg1>;
            return true;
        }

        // MOV r/m, Sreg: memory always takes 16 bits; a 32-bit register gets the selector zero-extended (386 and later).
        d.Execute = (Operands.IsMemory(in i, 0), Operands.SizeOf(in i, 0)) switch
        {
            (true, _) => &StoreMemory,
            (false, 2) => &StoreRegister16,
            (false, 4) => &StoreRegister32,
            _ => null,
        };
        return d.Execute != null;
    }

    /// <summary>LxS r, m16:16 or m16:32; the register form does not exist (Iced decodes C4/C5 with mod = 3 as VEX).</summary>
    private static bool BindFarPointer(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        if (!Operands.IsMemory(in i, 1))
        {
            return false;
        }

        d.Extra = i.Mnemonic switch
        {
            Mnemonic.Les => SegmentIndex.Es,
            Mnemonic.Lds => SegmentIndex.Ds,
            Mnemonic.Lss => SegmentIndex.Ss,
            Mnemonic.Lfs => SegmentIndex.Fs,
            _ => SegmentIndex.Gs,
        };
        d.Execute = Operands.SizeOf(in i, 0) == 4 ? &LoadFarPointer<W32>.Run : &LoadFarPointer<W16>.Run;
        return true;
    }

    /// <summary>
    /// MOV Sreg, r/m16. A load of SS holds interrupts off for the next instruction (so that MOV SS; MOV ESP cannot be
    /// interrupted between the two), and ends the block so that the shadow covers exactly what follows.
    /// </summary>
    private static void Load<TSrc>(Cpu cpu, ref DecodedInstruction d)
        where TSrc : IOperand
    {
        cpu.LoadSegment(d.R0, (ushort)TSrc.Read<W16>(cpu, ref d));
        if (d.R0 == SegmentIndex.Ss)
        {
            cpu.InterruptShadow = VcpuEvents.ShadowMovSs;
            cpu.Stop |= Cpu.StopAfter;
        }
    }

    private static void StoreMemory(Cpu cpu, ref DecodedInstruction d) =>
        cpu.Write16(d.Segment, cpu.Address(ref d), cpu.Segments[d.R1].Selector);

    private static void StoreRegister16(Cpu cpu, ref DecodedInstruction d) => cpu.SetReg16(d.R0, cpu.Segments[d.R1].Selector);

    private static void StoreRegister32(Cpu cpu, ref DecodedInstruction d) => cpu.Regs[d.R0] = cpu.Segments[d.R1].Selector;

    /// <summary>
    /// LDS and friends: offset then selector from memory. The segment is loaded before the register is written, so a
    /// faulting selector leaves the register as it was. Unlike MOV SS, LSS sets no interrupt shadow (Intel lists the
    /// shadow for MOV SS and POP SS only; QEMU applies it to LSS too): it loads SS:ESP in one instruction anyway.
    /// </summary>
    private static class LoadFarPointer<TW>
        where TW : IWidth
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            uint address = cpu.Address(ref d);
            uint offset = TW.Read(cpu, d.Segment, address);

            // Not wrapped at 64 KiB: a pointer that straddles the segment's limit faults, as on the 80386.
            ushort selector = cpu.Read16(d.Segment, address + (uint)TW.Size);
            cpu.LoadSegment(d.Extra, selector);
            TW.SetReg(cpu, d.R0, offset);
        }
    }
}
