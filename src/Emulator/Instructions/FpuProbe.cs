using Iced.Intel;
using Vmm.Accelerator.State;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// The x87 instructions an FPU probe uses, and nothing else: FNINIT, FNSTSW (AX or m16), FNSTCW, FLDCW, FNCLEX,
/// their waiting forms (FINIT, FSTSW, FSTCW, FCLEX: Iced decodes 9B and the instruction as one), and WAIT. They
/// only move the control, status and tag words; no value is ever computed, so no exception is ever pending and
/// WAIT has nothing to report (#MF is never raised). Every other x87, MMX or SSE instruction is unbound (#UD), which
/// to a guest looks like an FPU that is present but incomplete.
/// </summary>
/// <remarks>
/// CR0.EM or CR0.TS makes an x87 instruction #NM (the 80386's "device not available", how an OS emulates the FPU
/// or switches its state lazily); WAIT faults only with both TS and MP. A waiting form is WAIT then the no-wait
/// instruction, and either raises #NM in the same cases as the no-wait instruction alone.
/// </remarks>
internal static unsafe class FpuProbe
{
    /// <summary>FNCLEX keeps the status word's TOP, C3–C0 and nothing else: exception flags, SF, ES and B clear.</summary>
    private const ushort StatusKeptByClear = 0x7F00;

    public static void Register(BinderTable table)
    {
        foreach (Mnemonic init in (ReadOnlySpan<Mnemonic>)[Mnemonic.Fninit, Mnemonic.Finit])
        {
            table.Add(init, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Initialize));
        }

        foreach (Mnemonic clear in (ReadOnlySpan<Mnemonic>)[Mnemonic.Fnclex, Mnemonic.Fclex])
        {
            table.Add(clear, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &ClearExceptions));
        }

        foreach (Mnemonic storeStatus in (ReadOnlySpan<Mnemonic>)[Mnemonic.Fnstsw, Mnemonic.Fstsw])
        {
            table.Add(storeStatus, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
                Moves.Set(ref d, Operands.IsMemory(in i, 0) ? &StoreStatusMemory : &StoreStatusAx));
        }

        foreach (Mnemonic storeControl in (ReadOnlySpan<Mnemonic>)[Mnemonic.Fnstcw, Mnemonic.Fstcw])
        {
            table.Add(storeControl, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
                Operands.IsMemory(in i, 0) && Moves.Set(ref d, &StoreControl));
        }

        table.Add(Mnemonic.Fldcw, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
            Operands.IsMemory(in i, 0) && Moves.Set(ref d, &LoadControl));
        table.Add(Mnemonic.Wait, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Wait));
    }

    /// <summary>#NM when CR0.EM or CR0.TS is set.</summary>
    private static void RequireFpu(Cpu cpu)
    {
        if ((cpu.Cr0 & (SystemOps.Cr0Em | SystemOps.Cr0Ts)) != 0)
        {
            throw new CpuException(ExceptionVector.DeviceNotAvailable);
        }
    }

    /// <summary>FNINIT: control word 0x037F (all exceptions masked), status 0, every register empty.</summary>
    private static void Initialize(Cpu cpu, ref DecodedInstruction d)
    {
        RequireFpu(cpu);
        cpu.FpuControlWord = FpuState.InitialControlWord;
        cpu.FpuStatusWord = 0;
        cpu.FpuAbridgedTagWord = 0;
    }

    private static void ClearExceptions(Cpu cpu, ref DecodedInstruction d)
    {
        RequireFpu(cpu);
        cpu.FpuStatusWord &= StatusKeptByClear;
    }

    private static void StoreStatusAx(Cpu cpu, ref DecodedInstruction d)
    {
        RequireFpu(cpu);
        cpu.SetReg16(RegisterIndex.Eax, cpu.FpuStatusWord);
    }

    private static void StoreStatusMemory(Cpu cpu, ref DecodedInstruction d)
    {
        RequireFpu(cpu);
        cpu.Write16(d.Segment, cpu.Address(ref d), cpu.FpuStatusWord);
    }

    private static void StoreControl(Cpu cpu, ref DecodedInstruction d)
    {
        RequireFpu(cpu);
        cpu.Write16(d.Segment, cpu.Address(ref d), cpu.FpuControlWord);
    }

    /// <summary>FLDCW: the word as written (QEMU keeps reserved bits too).</summary>
    private static void LoadControl(Cpu cpu, ref DecodedInstruction d)
    {
        RequireFpu(cpu);
        cpu.FpuControlWord = cpu.Read16(d.Segment, cpu.Address(ref d));
    }

    /// <summary>WAIT/FWAIT: #NM only when both TS and MP are set (MP says WAIT belongs to the FPU's context).</summary>
    private static void Wait(Cpu cpu, ref DecodedInstruction d)
    {
        if ((cpu.Cr0 & (SystemOps.Cr0Ts | SystemOps.Cr0Mp)) == (SystemOps.Cr0Ts | SystemOps.Cr0Mp))
        {
            throw new CpuException(ExceptionVector.DeviceNotAvailable);
        }
    }
}
