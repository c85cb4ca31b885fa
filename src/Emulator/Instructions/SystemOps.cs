using Iced.Intel;
using Vmm.Accelerator.State;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// System instructions: HLT; the descriptor-table registers (LGDT LIDT SGDT SIDT, LLDT LTR SLDT STR); the control
/// and debug registers (MOV CRn/DRn, SMSW LMSW CLTS); the segment probes (LAR LSL VERR VERW); CPUID, RDTSC,
/// RDMSR/WRMSR; the cache and TLB instructions (no-ops: there are no caches and no paging); UD2.
/// </summary>
/// <remarks>
/// Mode checks (protected mode only) and privilege checks are made when the instruction executes, never when it is
/// bound: a decoded block is reused whatever CR0.PE and the CPL are by then.
/// </remarks>
internal static unsafe class SystemOps
{
    public const uint Cr0Pe = 1 << 0;
    public const uint Cr0Mp = 1 << 1;
    public const uint Cr0Em = 1 << 2;
    public const uint Cr0Ts = 1 << 3;
    public const uint Cr0Et = 1 << 4;
    public const uint Cr0Ne = 1 << 5;
    public const uint Cr0Wp = 1 << 16;
    public const uint Cr0Am = 1 << 18;
    public const uint Cr0Nw = 1 << 29;
    public const uint Cr0Cd = 1 << 30;
    public const uint Cr0Pg = 1u << 31;

    /// <summary>The CR0 bits a 486 has; writes to the others are ignored (Intel: reserved CR0[31:0] bits are not written).</summary>
    private const uint Cr0Implemented = Cr0Pe | Cr0Mp | Cr0Em | Cr0Ts | Cr0Et | Cr0Ne | Cr0Wp | Cr0Am | Cr0Nw | Cr0Cd | Cr0Pg;

    public const uint Cr4Tsd = 1 << 2;
    public const uint Cr4De = 1 << 3;

    /// <summary>
    /// The CR4 bits this CPU implements: RDTSC's privilege switch and the debug extensions (DR4/DR5 stop aliasing
    /// DR6/DR7). Everything else (VME, PSE, PAE, PGE, OSFXSR, ...) needs hardware this CPU does not have, and CPUID
    /// does not report it, so setting it is #GP as for a reserved bit.
    /// </summary>
    private const uint Cr4Implemented = Cr4Tsd | Cr4De;

    public const uint MsrTsc = ModelSpecificRegister.Tsc;
    public const uint MsrApicBase = 0x1B;
    public const uint MsrSysenterCs = 0x174;
    public const uint MsrSysenterEip = 0x176;

    /// <summary>CPUID leaf 0: the vendor string, 12 characters as EBX, EDX, ECX.</summary>
    public const string Vendor = "VmmSoftCPU86";

    /// <summary>CPUID leaf 1 EAX: family 4 (a 486), model 1, stepping 0.</summary>
    public const uint Signature = (4 << 8) | (1 << 4);

    /// <summary>CPUID leaf 1 EDX: FPU (the probe subset, <see cref="FpuProbe"/>), DE, TSC, MSR: what is implemented.</summary>
    public const uint FeaturesEdx = (1 << 0) | (1 << 2) | (1 << 4) | (1 << 5);

    public static void Register(BinderTable table)
    {
        table.Add(Mnemonic.Hlt, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Hlt));
        table.Add(Mnemonic.Lgdt, BindTableLoad);
        table.Add(Mnemonic.Lidt, BindTableLoad);
        table.Add(Mnemonic.Sgdt, BindTableStore);
        table.Add(Mnemonic.Sidt, BindTableStore);
        table.Add(Mnemonic.Smsw, BindSmsw);
        table.Add(Mnemonic.Lmsw, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
            Moves.Set(ref d, Operands.IsMemory(in i, 0) ? &Lmsw<Mem> : &Lmsw<Reg0>));
        table.Add(Mnemonic.Clts, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Clts));
        table.Add(Mnemonic.Cpuid, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Cpuid));
        table.Add(Mnemonic.Rdtsc, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Rdtsc));
        table.Add(Mnemonic.Rdmsr, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Rdmsr));
        table.Add(Mnemonic.Wrmsr, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Wrmsr));
        table.Add(Mnemonic.Invd, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &PrivilegedNop));
        table.Add(Mnemonic.Wbinvd, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &PrivilegedNop));
        table.Add(Mnemonic.Invlpg, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
            Operands.IsMemory(in i, 0) && Moves.Set(ref d, &PrivilegedNop));
        table.Add(Mnemonic.Ud2, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &InstructionBinder.Undefined));
        table.Add(Mnemonic.Lldt, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
            Moves.Set(ref d, Operands.IsMemory(in i, 0) ? &Lldt<Mem> : &Lldt<Reg0>));
        table.Add(Mnemonic.Ltr, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
            Moves.Set(ref d, Operands.IsMemory(in i, 0) ? &Ltr<Mem> : &Ltr<Reg0>));
        table.Add(Mnemonic.Sldt, BindSelectorStore);
        table.Add(Mnemonic.Str, BindSelectorStore);
        table.Add(Mnemonic.Lar, BindAccessProbe);
        table.Add(Mnemonic.Lsl, BindAccessProbe);
        table.Add(Mnemonic.Verr, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
            Moves.Set(ref d, Operands.IsMemory(in i, 0) ? &Verify<Mem, Readable> : &Verify<Reg0, Readable>));
        table.Add(Mnemonic.Verw, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
            Moves.Set(ref d, Operands.IsMemory(in i, 0) ? &Verify<Mem, Writable> : &Verify<Reg0, Writable>));
    }

    /// <summary>Privileged instructions need CPL 0 (always true in real mode).</summary>
    private static void RequireCpl0(Cpu cpu)
    {
        if (cpu.Cpl != 0)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }
    }

    /// <summary>LLDT, LTR, SLDT, STR, LAR, LSL, VERR, VERW exist in protected mode only.</summary>
    private static void RequireProtectedMode(Cpu cpu)
    {
        if (!cpu.ProtectedMode)
        {
            throw new CpuException(ExceptionVector.InvalidOpcode);
        }
    }

    /// <summary>HLT (CPL 0 only): the vCPU stops with EIP past it (<see cref="Cpu.Halted"/>).</summary>
    private static void Hlt(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        cpu.Halted = true;

        // A STI right before HLT covered the HLT itself: the interrupt that wakes the CPU is taken after it.
        cpu.InterruptShadow = 0;
        cpu.Stop |= Cpu.StopAfter;
    }

    private static void PrivilegedNop(Cpu cpu, ref DecodedInstruction d) => RequireCpl0(cpu);

    // GDTR and IDTR. The 6-byte image is a 16-bit limit and a 32-bit base; with a 16-bit operand size only 24 bits of
    // the base count (the 80286 layout): LGDT drops the high byte, SGDT stores it as zero (QEMU's behaviour; an
    // 80286 stored 0xFF). d.Imm holds the base mask.

    private static bool BindTableLoad(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        if (!Operands.IsMemory(in i, 0))
        {
            return false;
        }

        d.Imm = c.Operand32 ? 0xFFFF_FFFFu : 0x00FF_FFFFu;
        d.Execute = i.Mnemonic == Mnemonic.Lgdt ? &Lgdt : &Lidt;
        return true;
    }

    private static bool BindTableStore(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        if (!Operands.IsMemory(in i, 0))
        {
            return false;
        }

        d.Imm = c.Operand32 ? 0xFFFF_FFFFu : 0x00FF_FFFFu;
        d.Execute = i.Mnemonic == Mnemonic.Sgdt ? &Sgdt : &Sidt;
        return true;
    }

    private static DescriptorTable ReadTableImage(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        uint address = cpu.Address(ref d);
        ushort limit = cpu.Read16(d.Segment, address);
        uint tableBase = cpu.Read32(d.Segment, address + 2) & d.Imm;
        return new DescriptorTable(tableBase, limit);
    }

    /// <summary>The base (higher bytes) first: if that write is within the segment, so is the limit's below it.</summary>
    private static void WriteTableImage(Cpu cpu, ref DecodedInstruction d, DescriptorTable table)
    {
        uint address = cpu.Address(ref d);
        cpu.Write32(d.Segment, address + 2, (uint)table.Base & d.Imm);
        cpu.Write16(d.Segment, address, table.Limit);
    }

    private static void Lgdt(Cpu cpu, ref DecodedInstruction d) => cpu.Gdtr = ReadTableImage(cpu, ref d);

    private static void Lidt(Cpu cpu, ref DecodedInstruction d) => cpu.Idtr = ReadTableImage(cpu, ref d);

    private static void Sgdt(Cpu cpu, ref DecodedInstruction d) => WriteTableImage(cpu, ref d, cpu.Gdtr);

    private static void Sidt(Cpu cpu, ref DecodedInstruction d) => WriteTableImage(cpu, ref d, cpu.Idtr);

    // Control registers.

    /// <summary>
    /// SMSW: memory takes the low 16 bits of CR0; a register takes 16 bits, or with a 32-bit operand size all of CR0
    /// (the SDM leaves the high half undefined; QEMU and real CPUs store CR0).
    /// </summary>
    private static bool BindSmsw(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        d.Execute = (Operands.IsMemory(in i, 0), Operands.SizeOf(in i, 0)) switch
        {
            (true, _) => &SmswMemory,
            (false, 2) => &SmswRegister16,
            (false, 4) => &SmswRegister32,
            _ => null,
        };
        return d.Execute != null;
    }

    private static void SmswMemory(Cpu cpu, ref DecodedInstruction d) => cpu.Write16(d.Segment, cpu.Address(ref d), (ushort)cpu.Cr0);

    private static void SmswRegister16(Cpu cpu, ref DecodedInstruction d) => cpu.SetReg16(d.R0, (ushort)cpu.Cr0);

    private static void SmswRegister32(Cpu cpu, ref DecodedInstruction d) => cpu.Regs[d.R0] = cpu.Cr0;

    /// <summary>LMSW: writes PE MP EM TS only, and can set PE but not clear it (the 80286 way into protected mode, never out).</summary>
    private static void Lmsw<TSrc>(Cpu cpu, ref DecodedInstruction d)
        where TSrc : IOperand
    {
        RequireCpl0(cpu);
        uint source = TSrc.Read<W16>(cpu, ref d);
        WriteCr0(cpu, (cpu.Cr0 & ~(Cr0Mp | Cr0Em | Cr0Ts)) | (source & (Cr0Pe | Cr0Mp | Cr0Em | Cr0Ts)));
    }

    /// <summary>CLTS: clears CR0.TS. It ends the block like every CR0 write (x87 instructions read TS as they run, so only for uniformity).</summary>
    private static void Clts(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        cpu.Cr0 &= ~Cr0Ts;
        cpu.Stop |= Cpu.StopAfter;
    }

    /// <summary>
    /// Writes CR0 (MOV CR0, LMSW). ET is hardwired to 1 on a 486. PG without PE and NW without CD are #GP(0) (Intel;
    /// QEMU does not check). PG itself is accepted: paging is outside this CPU's scope and the vCPU stops with a
    /// failure before the next block. A change of PE switches how segments are checked. The block always ends: the
    /// next instruction must see the new mode, and a PG write must stop right here.
    /// </summary>
    public static void WriteCr0(Cpu cpu, uint value)
    {
        value = (value & Cr0Implemented) | Cr0Et;
        if ((value & Cr0Pg) != 0 && (value & Cr0Pe) == 0)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }

        if ((value & Cr0Nw) != 0 && (value & Cr0Cd) == 0)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }

        uint old = cpu.Cr0;
        cpu.Cr0 = value;
        if (((old ^ value) & Cr0Pe) != 0)
        {
            cpu.OnModeChanged();
        }

        cpu.Stop |= Cpu.StopAfter;
    }

    /// <summary>
    /// MOV to or from CRn or DRn (called by <see cref="Moves"/>, which owns MOV). The general register is always
    /// 32-bit (Iced names it so; the ModRM mod bits are ignored, as on the 386). CR0, CR2, CR3 and CR4 exist; CR8 and
    /// the rest are #UD outside 64-bit mode. DR0–DR7 exist (DR4/DR5 are checked when executed: they depend on
    /// CR4.DE). The test registers of the 386/486 are not implemented (Iced decodes them only on request).
    /// </summary>
    public static bool BindMovControl(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        Register r0 = i.Op0Register;
        Register r1 = i.Op1Register;
        if (r0.IsCR() && Operands.IsGeneral(r1))
        {
            d.Execute = d.R0 switch
            {
                0 => &MovToCr0,
                2 => &MovToCr2,
                3 => &MovToCr3,
                4 => &MovToCr4,
                _ => null,
            };
            return d.Execute != null;
        }

        if (r1.IsCR() && Operands.IsGeneral(r0))
        {
            if (d.R1 is not (0 or 2 or 3 or 4))
            {
                return false;
            }

            d.Execute = &MovFromCr;
            return true;
        }

        if (r0.IsDR() && Operands.IsGeneral(r1) && d.R0 < 8)
        {
            d.Execute = &MovToDr;
            return true;
        }

        if (r1.IsDR() && Operands.IsGeneral(r0) && d.R1 < 8)
        {
            d.Execute = &MovFromDr;
            return true;
        }

        return false;
    }

    private static void MovToCr0(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        WriteCr0(cpu, cpu.Regs[d.R1]);
    }

    /// <summary>CR2 (the page-fault address) is only storage without paging.</summary>
    private static void MovToCr2(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        cpu.Cr2 = cpu.Regs[d.R1];
    }

    /// <summary>CR3 is only storage without paging (kept whole, as QEMU does outside long mode).</summary>
    private static void MovToCr3(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        cpu.Cr3 = cpu.Regs[d.R1];
    }

    private static void MovToCr4(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        uint value = cpu.Regs[d.R1];
        if ((value & ~Cr4Implemented) != 0)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }

        cpu.Cr4 = value;
    }

    private static void MovFromCr(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        cpu.Regs[d.R0] = d.R1 switch
        {
            0 => cpu.Cr0,
            2 => cpu.Cr2,
            3 => cpu.Cr3,
            _ => cpu.Cr4,
        };
    }

    // Debug registers: kept, not acted on (no breakpoints are raised).

    /// <summary>DR4 and DR5 are DR6 and DR7 unless CR4.DE, which makes them #UD.</summary>
    private static int DebugRegister(Cpu cpu, int number)
    {
        if (number is 4 or 5)
        {
            if ((cpu.Cr4 & Cr4De) != 0)
            {
                throw new CpuException(ExceptionVector.InvalidOpcode);
            }

            return number + 2;
        }

        return number;
    }

    private static void MovFromDr(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        cpu.Regs[d.R0] = cpu.Dr[DebugRegister(cpu, d.R1)];
    }

    /// <summary>DR6 and DR7 keep their read-as-one bits set (QEMU's DR6_FIXED_1 and DR7_FIXED_1).</summary>
    private static void MovToDr(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        int number = DebugRegister(cpu, d.R0);
        uint value = cpu.Regs[d.R1];
        cpu.Dr[number] = number switch
        {
            6 => value | 0xFFFF_0FF0,
            7 => value | 0x0000_0400,
            _ => value,
        };
    }

    // Identification, time, model-specific registers.

    /// <summary>
    /// CPUID: leaf 0 gives the highest leaf (1) and the vendor; leaf 1 the signature and the implemented features.
    /// Any other leaf, the extended ones included, returns zeros (Intel would repeat the highest basic leaf; zeros
    /// are simpler and make 0x80000000 report no extended leaves). ECX is not an input for these leaves.
    /// </summary>
    private static void Cpuid(Cpu cpu, ref DecodedInstruction d)
    {
        uint* r = cpu.Regs;
        (uint eax, uint ebx, uint ecx, uint edx) = r[RegisterIndex.Eax] switch
        {
            0 => (1u, VendorPart(0), VendorPart(8), VendorPart(4)),
            1 => (Signature, 0u, 0u, FeaturesEdx),
            _ => (0u, 0u, 0u, 0u),
        };
        r[RegisterIndex.Eax] = eax;
        r[RegisterIndex.Ebx] = ebx;
        r[RegisterIndex.Ecx] = ecx;
        r[RegisterIndex.Edx] = edx;
    }

    private static uint VendorPart(int start) =>
        Vendor[start] | ((uint)Vendor[start + 1] << 8) | ((uint)Vendor[start + 2] << 16) | ((uint)Vendor[start + 3] << 24);

    /// <summary>RDTSC: CR4.TSD makes it privileged.</summary>
    private static void Rdtsc(Cpu cpu, ref DecodedInstruction d)
    {
        if ((cpu.Cr4 & Cr4Tsd) != 0 && cpu.Cpl != 0)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }

        SetEdxEax(cpu, cpu.TimeStampCounter);
    }

    private static void SetEdxEax(Cpu cpu, ulong value)
    {
        cpu.Regs[RegisterIndex.Eax] = (uint)value;
        cpu.Regs[RegisterIndex.Edx] = (uint)(value >> 32);
    }

    /// <summary>The SYSENTER MSRs are kept (storage only: SYSENTER itself is not implemented) so a guest may set them.</summary>
    private static bool IsSysenterMsr(uint index) => index is >= MsrSysenterCs and <= MsrSysenterEip;

    /// <summary>
    /// RDMSR: the TSC, the APIC base, the SYSENTER MSRs (0 until written) and any MSR a loaded state brought in
    /// <see cref="Cpu.Msrs"/>; any other index is #GP(0), as for an MSR the CPU does not have.
    /// </summary>
    private static void Rdmsr(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        uint index = cpu.Regs[RegisterIndex.Ecx];
        ulong value;
        if (index == MsrTsc)
        {
            value = cpu.TimeStampCounter;
        }
        else if (index == MsrApicBase)
        {
            value = cpu.ApicBase;
        }
        else if (!cpu.Msrs.TryGetValue(index, out value) && !IsSysenterMsr(index))
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }

        SetEdxEax(cpu, value);
    }

    private static void Wrmsr(Cpu cpu, ref DecodedInstruction d)
    {
        RequireCpl0(cpu);
        uint index = cpu.Regs[RegisterIndex.Ecx];
        ulong value = cpu.Regs[RegisterIndex.Eax] | ((ulong)cpu.Regs[RegisterIndex.Edx] << 32);
        if (index == MsrTsc)
        {
            cpu.TimeStampCounter = value;
        }
        else if (index == MsrApicBase)
        {
            cpu.ApicBase = value;
        }
        else if (IsSysenterMsr(index) || cpu.Msrs.ContainsKey(index))
        {
            cpu.Msrs[index] = value;
        }
        else
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }
    }

    // LDTR and TR.

    private static bool BindSelectorStore(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        d.Extra = i.Mnemonic == Mnemonic.Sldt ? (byte)0 : (byte)1;
        d.Execute = (Operands.IsMemory(in i, 0), Operands.SizeOf(in i, 0)) switch
        {
            (true, _) => &StoreSelectorMemory,
            (false, 2) => &StoreSelectorRegister16,
            (false, 4) => &StoreSelectorRegister32,
            _ => null,
        };
        return d.Execute != null;
    }

    /// <summary>SLDT (d.Extra = 0) or STR (1): not privileged, protected mode only.</summary>
    private static ushort SelectorToStore(Cpu cpu, ref DecodedInstruction d)
    {
        RequireProtectedMode(cpu);
        return d.Extra == 0 ? cpu.Ldtr.Selector : cpu.Tr.Selector;
    }

    private static void StoreSelectorMemory(Cpu cpu, ref DecodedInstruction d) =>
        cpu.Write16(d.Segment, cpu.Address(ref d), SelectorToStore(cpu, ref d));

    private static void StoreSelectorRegister16(Cpu cpu, ref DecodedInstruction d) => cpu.SetReg16(d.R0, SelectorToStore(cpu, ref d));

    /// <summary>A 32-bit register gets the selector zero-extended (QEMU; the SDM says so for the 486 and later).</summary>
    private static void StoreSelectorRegister32(Cpu cpu, ref DecodedInstruction d) => cpu.Regs[d.R0] = SelectorToStore(cpu, ref d);

    /// <summary>
    /// The GDT descriptor of a system segment for LLDT or LTR: the selector must point into the GDT (TI = 0) and name
    /// a present descriptor of one of <paramref name="types"/>; else #GP(selector), or #NP(selector) when not present.
    /// </summary>
    private static ulong ReadSystemDescriptor(Cpu cpu, ushort selector, ReadOnlySpan<int> types)
    {
        uint error = (uint)(selector & ~3);
        if ((selector & 4) != 0)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, error);
        }

        ulong raw = cpu.ReadDescriptor(selector, ExceptionVector.GeneralProtection);
        bool system = (raw & (1ul << 44)) == 0;
        if (!system || !types.Contains((int)(raw >> 40) & 0xF))
        {
            throw new CpuException(ExceptionVector.GeneralProtection, error);
        }

        if ((raw & (1ul << 47)) == 0)
        {
            throw new CpuException(ExceptionVector.SegmentNotPresent, error);
        }

        return raw;
    }

    /// <summary>LLDT: a null selector leaves LDTR unusable (any LDT reference then faults); otherwise an LDT descriptor (type 2).</summary>
    private static void Lldt<TSrc>(Cpu cpu, ref DecodedInstruction d)
        where TSrc : IOperand
    {
        RequireProtectedMode(cpu);
        RequireCpl0(cpu);
        ushort selector = (ushort)TSrc.Read<W16>(cpu, ref d);
        if ((selector & ~3) == 0)
        {
            cpu.Ldtr = new Segment { Selector = selector, Unusable = true };
            return;
        }

        cpu.Ldtr = Cpu.DecodeDescriptor(selector, ReadSystemDescriptor(cpu, selector, [2]));
    }

    /// <summary>
    /// LTR: an available 16- or 32-bit TSS (type 1 or 9; a busy one is #GP, and so is a null selector, as Intel
    /// says — QEMU instead loads an unusable TR). The descriptor in the GDT is marked busy, and so is TR's cache.
    /// </summary>
    private static void Ltr<TSrc>(Cpu cpu, ref DecodedInstruction d)
        where TSrc : IOperand
    {
        RequireProtectedMode(cpu);
        RequireCpl0(cpu);
        ushort selector = (ushort)TSrc.Read<W16>(cpu, ref d);
        if ((selector & ~3) == 0)
        {
            throw new CpuException(ExceptionVector.GeneralProtection, 0);
        }

        ulong raw = ReadSystemDescriptor(cpu, selector, [1, 9]);
        const byte busy = 0x2;
        cpu.WriteLinear((uint)cpu.Gdtr.Base + (uint)(selector & ~7) + 5, (uint)(byte)(raw >> 40) | busy, 1);
        Segment tss = Cpu.DecodeDescriptor(selector, raw);
        tss.Type |= busy;
        cpu.Tr = tss;
    }

    // LAR, LSL, VERR, VERW: they ask whether the CPL could use a selector, and answer in ZF instead of faulting.

    /// <summary>The descriptor a selector names, or null where a load would fault on the table itself (null selector, beyond the limit).</summary>
    private static ulong? TryReadDescriptor(Cpu cpu, ushort selector)
    {
        if ((selector & ~3) == 0)
        {
            return null;
        }

        bool local = (selector & 4) != 0;
        if (local && cpu.Ldtr.Unusable)
        {
            return null;
        }

        uint tableBase = local ? (uint)cpu.Ldtr.Base : (uint)cpu.Gdtr.Base;
        uint tableLimit = local ? cpu.Ldtr.Limit : cpu.Gdtr.Limit;
        uint index = (uint)(selector & ~7);
        if (index + 7 > tableLimit)
        {
            return null;
        }

        uint at = tableBase + index;
        return cpu.ReadLinear(at, 4) | ((ulong)cpu.ReadLinear(at + 4, 4) << 32);
    }

    /// <summary>
    /// Whether the CPL and the selector's RPL may see a descriptor: code or data with DPL ≥ both (conforming code
    /// always), or a system descriptor of one of <paramref name="systemTypes"/> with DPL ≥ both.
    /// </summary>
    private static bool Visible(Cpu cpu, ushort selector, ulong raw, ReadOnlySpan<int> systemTypes)
    {
        int dpl = (int)(raw >> 45) & 3;
        int type = (int)(raw >> 40) & 0xF;
        bool codeOrData = (raw & (1ul << 44)) != 0;
        if (codeOrData && (type & 0xC) == 0xC)
        {
            return true;
        }

        if (!codeOrData && !systemTypes.Contains(type))
        {
            return false;
        }

        return dpl >= cpu.Cpl && dpl >= (selector & 3);
    }

    private static void SetZero(Cpu cpu, bool zero)
    {
        uint flags = cpu.MaterializeFlags();
        cpu.CcSrc = zero ? flags | LazyFlags.ZF : flags & ~LazyFlags.ZF;
    }

    private static bool BindAccessProbe(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        bool lar = i.Mnemonic == Mnemonic.Lar;
        bool memory = Operands.IsMemory(in i, 1);
        d.Execute = (lar, memory, Operands.SizeOf(in i, 0)) switch
        {
            (true, false, 2) => &AccessProbe<Reg1, W16, AccessRights>.Run,
            (true, true, 2) => &AccessProbe<Mem, W16, AccessRights>.Run,
            (true, false, 4) => &AccessProbe<Reg1, W32, AccessRights>.Run,
            (true, true, 4) => &AccessProbe<Mem, W32, AccessRights>.Run,
            (false, false, 2) => &AccessProbe<Reg1, W16, SegmentLimit>.Run,
            (false, true, 2) => &AccessProbe<Mem, W16, SegmentLimit>.Run,
            (false, false, 4) => &AccessProbe<Reg1, W32, SegmentLimit>.Run,
            (false, true, 4) => &AccessProbe<Mem, W32, SegmentLimit>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    private interface IAccessProbe
    {
        /// <summary>The system descriptor types the instruction reports on.</summary>
        static abstract ReadOnlySpan<int> SystemTypes { get; }

        static abstract uint Result(ulong raw);
    }

    /// <summary>LAR: the attribute bytes (type, S, DPL, P; AVL, D/B, G), masked as in the descriptor's high dword.</summary>
    private readonly struct AccessRights : IAccessProbe
    {
        public static ReadOnlySpan<int> SystemTypes => [1, 2, 3, 4, 5, 9, 11, 12];

        public static uint Result(ulong raw) => (uint)(raw >> 32) & 0x00F0_FF00;
    }

    /// <summary>LSL: the limit in bytes (scaled by G). Gates have no limit, so only TSS and LDT descriptors count.</summary>
    private readonly struct SegmentLimit : IAccessProbe
    {
        public static ReadOnlySpan<int> SystemTypes => [1, 2, 3, 9, 11];

        public static uint Result(ulong raw) => Cpu.DecodeDescriptor(0, raw).Limit;
    }

    /// <summary>LAR or LSL: ZF = 1 and the destination written when the descriptor is visible; else ZF = 0 and the destination kept.</summary>
    private static class AccessProbe<TSrc, TW, TProbe>
        where TSrc : IOperand
        where TW : IWidth
        where TProbe : IAccessProbe
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            RequireProtectedMode(cpu);
            ushort selector = (ushort)TSrc.Read<W16>(cpu, ref d);
            ulong? raw = TryReadDescriptor(cpu, selector);
            bool visible = raw is { } descriptor && Visible(cpu, selector, descriptor, TProbe.SystemTypes);
            if (visible)
            {
                TW.SetReg(cpu, d.R0, TProbe.Result(raw!.Value) & TW.Mask);
            }

            SetZero(cpu, visible);
        }
    }

    private interface IAccessKind
    {
        static abstract bool Allows(ulong raw);
    }

    /// <summary>VERR: data, or readable code.</summary>
    private readonly struct Readable : IAccessKind
    {
        public static bool Allows(ulong raw) => ((raw >> 40) & 0x8) == 0 || ((raw >> 40) & 0x2) != 0;
    }

    /// <summary>VERW: writable data only.</summary>
    private readonly struct Writable : IAccessKind
    {
        public static bool Allows(ulong raw) => ((raw >> 40) & 0x8) == 0 && ((raw >> 40) & 0x2) != 0;
    }

    /// <summary>VERR or VERW: ZF = 1 when the CPL (and RPL) could read or write through the selector's segment.</summary>
    private static void Verify<TSrc, TKind>(Cpu cpu, ref DecodedInstruction d)
        where TSrc : IOperand
        where TKind : IAccessKind
    {
        RequireProtectedMode(cpu);
        ushort selector = (ushort)TSrc.Read<W16>(cpu, ref d);
        bool allowed = TryReadDescriptor(cpu, selector) is { } raw && (raw & (1ul << 44)) != 0 && TKind.Allows(raw) &&
            Visible(cpu, selector, raw, []);
        SetZero(cpu, allowed);
    }
}
