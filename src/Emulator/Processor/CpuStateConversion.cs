using Vmm.Accelerator.State;

namespace Vmm.Emulator.Processor;

/// <summary>
/// The software CPU's state in the accelerator-neutral form KVM's state also maps to, both ways: what one
/// accelerator saves, the other loads (migration between a KVM host and one without).
/// </summary>
internal static unsafe class CpuStateConversion
{
    /// <summary>kvm_vcpu_events flags: the shadow and NMI-pending fields are valid.</summary>
    private const uint EventsValidNmiPending = 0x1;
    private const uint EventsValidShadow = 0x4;

    public static VcpuRegisters GetRegisters(Cpu cpu)
    {
        uint* r = cpu.Regs;
        return new VcpuRegisters
        {
            General = new GeneralRegisters
            {
                Rax = r[RegisterIndex.Eax],
                Rcx = r[RegisterIndex.Ecx],
                Rdx = r[RegisterIndex.Edx],
                Rbx = r[RegisterIndex.Ebx],
                Rsp = r[RegisterIndex.Esp],
                Rbp = r[RegisterIndex.Ebp],
                Rsi = r[RegisterIndex.Esi],
                Rdi = r[RegisterIndex.Edi],
                Rip = cpu.Eip,
                Rflags = cpu.Eflags,
            },
            Es = cpu.Segments[SegmentIndex.Es],
            Cs = cpu.Segments[SegmentIndex.Cs],
            Ss = cpu.Segments[SegmentIndex.Ss],
            Ds = cpu.Segments[SegmentIndex.Ds],
            Fs = cpu.Segments[SegmentIndex.Fs],
            Gs = cpu.Segments[SegmentIndex.Gs],
            Tr = cpu.Tr,
            Ldt = cpu.Ldtr,
            Gdt = cpu.Gdtr,
            Idt = cpu.Idtr,
            Cr0 = cpu.Cr0,
            Cr2 = cpu.Cr2,
            Cr3 = cpu.Cr3,
            Cr4 = cpu.Cr4,
            Cr8 = cpu.Cr8,
            Efer = cpu.Efer,
            ApicBase = cpu.ApicBase,
        };
    }

    public static VcpuState GetState(Cpu cpu)
    {
        var msrs = new List<ModelSpecificRegister> { new(ModelSpecificRegister.Tsc, cpu.TimeStampCounter) };
        msrs.AddRange(cpu.Msrs.Select(m => new ModelSpecificRegister(m.Key, m.Value)));
        return new VcpuState
        {
            Registers = GetRegisters(cpu),
            Fpu = new FpuState
            {
                ControlWord = cpu.FpuControlWord,
                StatusWord = cpu.FpuStatusWord,
                AbridgedTagWord = cpu.FpuAbridgedTagWord,
            },
            Msrs = msrs,
            Events = new VcpuEvents
            {
                InterruptShadow = cpu.InterruptShadow,
                Flags = EventsValidNmiPending | EventsValidShadow,
            },
            MpState = cpu.Halted ? MpState.Halted : MpState.Runnable,
        };
    }

    /// <summary>
    /// Loads a whole state. Everything cached about guest memory is dropped: a state is loaded when the machine's
    /// memory was replaced too (an incoming migration, a reset).
    /// </summary>
    public static void SetState(Cpu cpu, VcpuState state)
    {
        VcpuRegisters registers = state.Registers;
        GeneralRegisters g = registers.General;
        uint* r = cpu.Regs;
        r[RegisterIndex.Eax] = (uint)g.Rax;
        r[RegisterIndex.Ecx] = (uint)g.Rcx;
        r[RegisterIndex.Edx] = (uint)g.Rdx;
        r[RegisterIndex.Ebx] = (uint)g.Rbx;
        r[RegisterIndex.Esp] = (uint)g.Rsp;
        r[RegisterIndex.Ebp] = (uint)g.Rbp;
        r[RegisterIndex.Esi] = (uint)g.Rsi;
        r[RegisterIndex.Edi] = (uint)g.Rdi;
        cpu.Eip = (uint)g.Rip;
        cpu.SetEflags((uint)g.Rflags, Cpu.ImplementedFlags);
        cpu.Cr0 = (uint)registers.Cr0;
        cpu.Cr2 = (uint)registers.Cr2;
        cpu.Cr3 = (uint)registers.Cr3;
        cpu.Cr4 = (uint)registers.Cr4;
        cpu.Cr8 = registers.Cr8;
        cpu.Efer = registers.Efer;
        cpu.ApicBase = registers.ApicBase;
        cpu.Gdtr = registers.Gdt;
        cpu.Idtr = registers.Idt;
        cpu.Tr = registers.Tr;
        cpu.Ldtr = registers.Ldt;
        cpu.LoadSegmentCache(SegmentIndex.Es, registers.Es);
        cpu.LoadSegmentCache(SegmentIndex.Cs, registers.Cs);
        cpu.LoadSegmentCache(SegmentIndex.Ss, registers.Ss);
        cpu.LoadSegmentCache(SegmentIndex.Ds, registers.Ds);
        cpu.LoadSegmentCache(SegmentIndex.Fs, registers.Fs);
        cpu.LoadSegmentCache(SegmentIndex.Gs, registers.Gs);

        // The CPL is SS's DPL in protected mode (as VMX keeps it), 0 in real mode.
        cpu.Cpl = cpu.ProtectedMode ? registers.Ss.Dpl : 0;
        cpu.FpuControlWord = state.Fpu.ControlWord;
        cpu.FpuStatusWord = state.Fpu.StatusWord;
        cpu.FpuAbridgedTagWord = state.Fpu.AbridgedTagWord;
        foreach (ModelSpecificRegister msr in state.Msrs)
        {
            if (msr.Index == ModelSpecificRegister.Tsc)
            {
                cpu.TimeStampCounter = msr.Value;
            }
            else
            {
                cpu.Msrs[msr.Index] = msr.Value;
            }
        }

        cpu.InterruptShadow = state.Events.InterruptShadow;
        cpu.Halted = state.MpState == MpState.Halted;
        cpu.ShutDown = false;
        cpu.FlushCaches();
    }
}
