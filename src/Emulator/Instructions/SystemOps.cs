using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>TODO: not written yet.</summary>
internal static unsafe class SystemOps
{
    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Hlt, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Hlt));
    }

    /// <summary>HLT (CPL 0 only): the vCPU stops with EIP past it (<see cref="Cpu.Halted"/>).</summary>
    private static void Hlt(Cpu cpu, ref DecodedInstruction d)
    {
        if (cpu.Cpl != 0)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }

        cpu.Halted = true;
        cpu.Stop |= Cpu.StopAfter;
    }

    /// <summary>MOV to or from a control or debug register (called by <see cref="Moves"/>, which owns MOV).</summary>
    public static bool BindMovControl(in Instruction i, ref DecodedInstruction d, BindContext c) => false;
}
