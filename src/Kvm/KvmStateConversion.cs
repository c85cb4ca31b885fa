using Vmm.Accelerator.State;
using Vmm.Linux.Kvm;

namespace Vmm.Kvm;

/// <summary>
/// The portable vCPU state (<see cref="VcpuState"/>) and KVM's structs, field for field, both ways. The migration
/// stream's `cpu0` section is these structs' bytes, so both accelerators write and read it through here.
/// </summary>
public static unsafe class KvmStateConversion
{
    public static VcpuRegisters ToRegisters(in KvmRegs regs, in KvmSregs sregs)
    {
        ulong[] pending = new ulong[4];
        for (int i = 0; i < pending.Length; i++)
        {
            pending[i] = sregs.InterruptBitmap[i];
        }

        return new VcpuRegisters
        {
            General = new GeneralRegisters
            {
                Rax = regs.Rax, Rbx = regs.Rbx, Rcx = regs.Rcx, Rdx = regs.Rdx, Rsi = regs.Rsi, Rdi = regs.Rdi, Rsp = regs.Rsp, Rbp = regs.Rbp,
                R8 = regs.R8, R9 = regs.R9, R10 = regs.R10, R11 = regs.R11, R12 = regs.R12, R13 = regs.R13, R14 = regs.R14, R15 = regs.R15,
                Rip = regs.Rip, Rflags = regs.Rflags,
            },
            Cs = ToSegment(sregs.Cs),
            Ds = ToSegment(sregs.Ds),
            Es = ToSegment(sregs.Es),
            Fs = ToSegment(sregs.Fs),
            Gs = ToSegment(sregs.Gs),
            Ss = ToSegment(sregs.Ss),
            Tr = ToSegment(sregs.Tr),
            Ldt = ToSegment(sregs.Ldt),
            Gdt = new DescriptorTable(sregs.Gdt.Base, sregs.Gdt.Limit),
            Idt = new DescriptorTable(sregs.Idt.Base, sregs.Idt.Limit),
            Cr0 = sregs.Cr0,
            Cr2 = sregs.Cr2,
            Cr3 = sregs.Cr3,
            Cr4 = sregs.Cr4,
            Cr8 = sregs.Cr8,
            Efer = sregs.Efer,
            ApicBase = sregs.ApicBase,
            PendingInterruptBitmap = pending,
        };
    }

    public static (KvmRegs Regs, KvmSregs Sregs) FromRegisters(VcpuRegisters registers)
    {
        GeneralRegisters g = registers.General;
        var regs = new KvmRegs
        {
            Rax = g.Rax, Rbx = g.Rbx, Rcx = g.Rcx, Rdx = g.Rdx, Rsi = g.Rsi, Rdi = g.Rdi, Rsp = g.Rsp, Rbp = g.Rbp,
            R8 = g.R8, R9 = g.R9, R10 = g.R10, R11 = g.R11, R12 = g.R12, R13 = g.R13, R14 = g.R14, R15 = g.R15,
            Rip = g.Rip, Rflags = g.Rflags,
        };
        var sregs = new KvmSregs
        {
            Cs = FromSegment(registers.Cs),
            Ds = FromSegment(registers.Ds),
            Es = FromSegment(registers.Es),
            Fs = FromSegment(registers.Fs),
            Gs = FromSegment(registers.Gs),
            Ss = FromSegment(registers.Ss),
            Tr = FromSegment(registers.Tr),
            Ldt = FromSegment(registers.Ldt),
            Gdt = new KvmDtable { Base = registers.Gdt.Base, Limit = registers.Gdt.Limit },
            Idt = new KvmDtable { Base = registers.Idt.Base, Limit = registers.Idt.Limit },
            Cr0 = registers.Cr0,
            Cr2 = registers.Cr2,
            Cr3 = registers.Cr3,
            Cr4 = registers.Cr4,
            Cr8 = registers.Cr8,
            Efer = registers.Efer,
            ApicBase = registers.ApicBase,
        };
        for (int i = 0; i < 4 && i < registers.PendingInterruptBitmap.Length; i++)
        {
            sregs.InterruptBitmap[i] = registers.PendingInterruptBitmap[i];
        }

        return (regs, sregs);
    }

    public static Segment ToSegment(in KvmSegment s) => new()
    {
        Base = s.Base,
        Limit = s.Limit,
        Selector = s.Selector,
        Type = s.Type,
        Present = s.Present != 0,
        Dpl = s.Dpl,
        DefaultBig = s.Db != 0,
        CodeOrData = s.S != 0,
        Long = s.L != 0,
        Granularity = s.G != 0,
        Available = s.Avl != 0,
        Unusable = s.Unusable != 0,
    };

    public static KvmSegment FromSegment(in Segment s) => new()
    {
        Base = s.Base,
        Limit = s.Limit,
        Selector = s.Selector,
        Type = s.Type,
        Present = Bit(s.Present),
        Dpl = s.Dpl,
        Db = Bit(s.DefaultBig),
        S = Bit(s.CodeOrData),
        L = Bit(s.Long),
        G = Bit(s.Granularity),
        Avl = Bit(s.Available),
        Unusable = Bit(s.Unusable),
    };

    public static FpuState ToFpu(in KvmFpu fpu)
    {
        byte[] registers = new byte[128];
        byte[] xmm = new byte[256];
        fixed (byte* fpr = fpu.Fpr, x = fpu.Xmm)
        {
            new ReadOnlySpan<byte>(fpr, 128).CopyTo(registers);
            new ReadOnlySpan<byte>(x, 256).CopyTo(xmm);
        }

        return new FpuState
        {
            Registers = registers,
            ControlWord = fpu.Fcw,
            StatusWord = fpu.Fsw,
            AbridgedTagWord = fpu.Ftwx,
            LastOpcode = fpu.LastOpcode,
            LastInstructionPointer = fpu.LastIp,
            LastDataPointer = fpu.LastDp,
            Xmm = xmm,
            Mxcsr = fpu.Mxcsr,
        };
    }

    public static KvmFpu FromFpu(FpuState state)
    {
        var fpu = new KvmFpu
        {
            Fcw = state.ControlWord,
            Fsw = state.StatusWord,
            Ftwx = state.AbridgedTagWord,
            LastOpcode = state.LastOpcode,
            LastIp = state.LastInstructionPointer,
            LastDp = state.LastDataPointer,
            Mxcsr = state.Mxcsr,
        };
        state.Registers.AsSpan(0, Math.Min(128, state.Registers.Length)).CopyTo(new Span<byte>(fpu.Fpr, 128));
        state.Xmm.AsSpan(0, Math.Min(256, state.Xmm.Length)).CopyTo(new Span<byte>(fpu.Xmm, 256));
        return fpu;
    }

    public static IReadOnlyList<ExtendedControlRegister> ToXcrs(in KvmXcrs xcrs)
    {
        var list = new List<ExtendedControlRegister>();
        for (int i = 0; i < Math.Min((int)xcrs.NrXcrs, KvmXcrs.MaxXcrs); i++)
        {
            list.Add(new ExtendedControlRegister(xcrs.Xcrs[i].Xcr, xcrs.Xcrs[i].Value));
        }

        return list;
    }

    public static KvmXcrs FromXcrs(IReadOnlyList<ExtendedControlRegister> list)
    {
        if (list.Count > KvmXcrs.MaxXcrs)
        {
            throw new InvalidDataException($"{list.Count} extended control registers; KVM carries at most {KvmXcrs.MaxXcrs}");
        }

        var xcrs = new KvmXcrs { NrXcrs = (uint)list.Count };
        for (int i = 0; i < list.Count; i++)
        {
            xcrs.Xcrs[i] = new KvmXcr { Xcr = list[i].Index, Value = list[i].Value };
        }

        return xcrs;
    }

    public static VcpuEvents ToEvents(in KvmVcpuEvents e) => new()
    {
        ExceptionInjected = e.ExceptionInjected != 0,
        ExceptionVector = e.ExceptionNr,
        ExceptionHasErrorCode = e.ExceptionHasErrorCode != 0,
        ExceptionPending = e.ExceptionPending != 0,
        ExceptionErrorCode = e.ExceptionErrorCode,
        InterruptInjected = e.InterruptInjected != 0,
        InterruptVector = e.InterruptNr,
        InterruptSoft = e.InterruptSoft != 0,
        InterruptShadow = e.InterruptShadow,
        NmiInjected = e.NmiInjected != 0,
        NmiPending = e.NmiPending != 0,
        NmiMasked = e.NmiMasked != 0,
        SipiVector = e.SipiVector,
        Flags = e.Flags,
    };

    public static KvmVcpuEvents FromEvents(in VcpuEvents e) => new()
    {
        ExceptionInjected = Bit(e.ExceptionInjected),
        ExceptionNr = e.ExceptionVector,
        ExceptionHasErrorCode = Bit(e.ExceptionHasErrorCode),
        ExceptionPending = Bit(e.ExceptionPending),
        ExceptionErrorCode = e.ExceptionErrorCode,
        InterruptInjected = Bit(e.InterruptInjected),
        InterruptNr = e.InterruptVector,
        InterruptSoft = Bit(e.InterruptSoft),
        InterruptShadow = e.InterruptShadow,
        NmiInjected = Bit(e.NmiInjected),
        NmiPending = Bit(e.NmiPending),
        NmiMasked = Bit(e.NmiMasked),
        SipiVector = e.SipiVector,
        Flags = e.Flags,
    };

    private static byte Bit(bool value) => value ? (byte)1 : (byte)0;
}
