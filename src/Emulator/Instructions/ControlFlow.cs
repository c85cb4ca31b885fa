using System.Runtime.CompilerServices;
using Iced.Intel;
using Vmm.Accelerator.State;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// Transfers of control: Jcc, JMP and CALL (relative, near indirect, far direct and far indirect), RET and RETF,
/// LOOP/LOOPE/LOOPNE, JCXZ/JECXZ, INT n/INT3/INTO, IRET, and the frame instructions ENTER, LEAVE and BOUND.
/// </summary>
/// <remarks>
/// The operand size decides what a near or far transfer pushes and pops (16 or 32 bits; a 16-bit EIP is zero
/// extended). A taken branch sets <see cref="Cpu.Eip"/> and <see cref="Cpu.StopJumped"/>; a branch not taken does
/// nothing. Every new EIP is checked against CS's limit first (#GP(0)), and transfers that load CS or move ESP do
/// so only after everything that can fault, so a fault leaves the registers as they were. Far transfers through
/// call gates, task gates or TSS descriptors, task returns (IRET with NT set) and returns to virtual-8086 mode are
/// not implemented: they raise #GP.
/// </remarks>
internal static unsafe class ControlFlow
{
    public static void Register(BinderTable table)
    {
        foreach (Mnemonic jcc in (ReadOnlySpan<Mnemonic>)[
            Mnemonic.Jo, Mnemonic.Jno, Mnemonic.Jb, Mnemonic.Jae, Mnemonic.Je, Mnemonic.Jne, Mnemonic.Jbe, Mnemonic.Ja,
            Mnemonic.Js, Mnemonic.Jns, Mnemonic.Jp, Mnemonic.Jnp, Mnemonic.Jl, Mnemonic.Jge, Mnemonic.Jle, Mnemonic.Jg])
        {
            table.Add(jcc, BindJcc);
        }

        table.Add(Mnemonic.Jmp, BindJmp);
        table.Add(Mnemonic.Call, BindCall);
        table.Add(Mnemonic.Ret, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
            Moves.Set(ref d, c.Operand32 ? &ReturnNear<W32> : &ReturnNear<W16>));
        table.Add(Mnemonic.Retf, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
            Moves.Set(ref d, c.Operand32 ? &ReturnFar<W32> : &ReturnFar<W16>));
        table.Add(Mnemonic.Iret, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &InterruptReturn<W16>));
        table.Add(Mnemonic.Iretd, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &InterruptReturn<W32>));
        table.Add(Mnemonic.Loop, BindLoop<Always>);
        table.Add(Mnemonic.Loope, BindLoop<WhileZero>);
        table.Add(Mnemonic.Loopne, BindLoop<WhileNotZero>);
        table.Add(Mnemonic.Jcxz, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &JumpIfCounterZero<A16>));
        table.Add(Mnemonic.Jecxz, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &JumpIfCounterZero<A32>));
        table.Add(Mnemonic.Int, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Interrupt));
        table.Add(Mnemonic.Int3, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &Breakpoint));
        table.Add(Mnemonic.Into, (in Instruction i, ref DecodedInstruction d, BindContext c) => Moves.Set(ref d, &InterruptOnOverflow));
        table.Add(Mnemonic.Enter, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
            Moves.Set(ref d, c.Operand32 ? &Enter<W32> : &Enter<W16>));
        table.Add(Mnemonic.Leave, (in Instruction i, ref DecodedInstruction d, BindContext c) =>
            Moves.Set(ref d, c.Operand32 ? &Leave<W32> : &Leave<W16>));
        table.Add(Mnemonic.Bound, BindBound);
    }

    // Binders.

    private static bool BindJcc(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        d.Execute = FlagControl.ConditionOf(in i) switch
        {
            0 => &JumpIf0,
            1 => &JumpIf1,
            2 => &JumpIf2,
            3 => &JumpIf3,
            4 => &JumpIf4,
            5 => &JumpIf5,
            6 => &JumpIf6,
            7 => &JumpIf7,
            8 => &JumpIf8,
            9 => &JumpIf9,
            10 => &JumpIf10,
            11 => &JumpIf11,
            12 => &JumpIf12,
            13 => &JumpIf13,
            14 => &JumpIf14,
            15 => &JumpIf15,
            _ => null,
        };
        return d.Execute != null;
    }

    private static bool BindJmp(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        bool o32 = c.Operand32;
        d.Execute = i.Op0Kind switch
        {
            OpKind.NearBranch16 or OpKind.NearBranch32 => &JumpNear,
            OpKind.FarBranch16 or OpKind.FarBranch32 => &JumpFar,
            OpKind.Register => o32 ? &JumpIndirect<W32, Reg0>.Run : &JumpIndirect<W16, Reg0>.Run,
            OpKind.Memory when IsFarPointer(in i) => o32 ? &JumpFarIndirect<W32> : &JumpFarIndirect<W16>,
            OpKind.Memory => o32 ? &JumpIndirect<W32, Mem>.Run : &JumpIndirect<W16, Mem>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    private static bool BindCall(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        bool o32 = c.Operand32;
        d.Execute = i.Op0Kind switch
        {
            OpKind.NearBranch16 or OpKind.NearBranch32 => o32 ? &CallNear<W32, Imm>.Run : &CallNear<W16, Imm>.Run,
            OpKind.FarBranch16 or OpKind.FarBranch32 => o32 ? &CallFar<W32> : &CallFar<W16>,
            OpKind.Register => o32 ? &CallNear<W32, Reg0>.Run : &CallNear<W16, Reg0>.Run,
            OpKind.Memory when IsFarPointer(in i) => o32 ? &CallFarIndirect<W32> : &CallFarIndirect<W16>,
            OpKind.Memory => o32 ? &CallNear<W32, Mem>.Run : &CallNear<W16, Mem>.Run,
            _ => null,
        };
        return d.Execute != null;
    }

    /// <summary>JMP/CALL m16:16 or m16:32 (Iced names the memory operand a segment:offset pointer).</summary>
    private static bool IsFarPointer(in Instruction i) => i.MemorySize is MemorySize.SegPtr16 or MemorySize.SegPtr32;

    private static bool BindLoop<TCondition>(in Instruction i, ref DecodedInstruction d, BindContext c)
        where TCondition : ILoopCondition
    {
        // The counter is CX or ECX by the address size, which Iced's code names.
        bool ecx = i.Code is Code.Loop_rel8_16_ECX or Code.Loop_rel8_32_ECX or Code.Loope_rel8_16_ECX or Code.Loope_rel8_32_ECX
            or Code.Loopne_rel8_16_ECX or Code.Loopne_rel8_32_ECX;
        d.Execute = ecx ? &Loop<A32, TCondition>.Run : &Loop<A16, TCondition>.Run;
        return true;
    }

    private static bool BindBound(in Instruction i, ref DecodedInstruction d, BindContext c)
    {
        if (!Operands.IsMemory(in i, 1))
        {
            return false;
        }

        d.Execute = Operands.SizeOf(in i, 0) == 4 ? &Bound<W32> : &Bound<W16>;
        return true;
    }

    // Branch primitives.

    /// <summary>A new EIP beyond CS's limit faults before anything changes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CheckTarget(Cpu cpu, uint target)
    {
        if (target > cpu.Segments[SegmentIndex.Cs].Limit)
        {
            ThrowGeneralProtection();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowGeneralProtection() => throw new CpuException(ExceptionVector.GeneralProtection, 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Jump(Cpu cpu, uint target)
    {
        CheckTarget(cpu, target);
        cpu.Eip = target;
        cpu.Stop |= Cpu.StopJumped;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void JumpIf(Cpu cpu, ref DecodedInstruction d, bool taken)
    {
        if (taken)
        {
            Jump(cpu, d.Imm);
        }
    }

    // One handler per condition, so that each evaluates its condition with the code folded in.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf0(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(0));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf1(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(1));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf2(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf3(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(3));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf4(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(4));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf5(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(5));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf6(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(6));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf7(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(7));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf8(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(8));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf9(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(9));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf10(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(10));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf11(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(11));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf12(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(12));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf13(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(13));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf14(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(14));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void JumpIf15(Cpu cpu, ref DecodedInstruction d) => JumpIf(cpu, ref d, cpu.Condition(15));

    // JMP and CALL.

    /// <summary>JMP rel: Iced resolved the target (already cut to 16 bits for a 16-bit operand size).</summary>
    private static void JumpNear(Cpu cpu, ref DecodedInstruction d) => Jump(cpu, d.Imm);

    /// <summary>JMP r/m: a 16-bit operand size reads 16 bits, so the new EIP is zero-extended.</summary>
    private static class JumpIndirect<TW, TSrc>
        where TW : IWidth
        where TSrc : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d) => Jump(cpu, TSrc.Read<TW>(cpu, ref d));
    }

    private static void JumpFar(Cpu cpu, ref DecodedInstruction d) => FarJump(cpu, (ushort)d.Imm2, d.Imm);

    /// <summary>JMP m16:16 / m16:32: the offset, then the selector above it.</summary>
    private static void JumpFarIndirect<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth
    {
        uint address = cpu.Address(ref d);
        uint offset = TW.Read(cpu, d.Segment, address);
        ushort selector = cpu.Read16(d.Segment, (address + (uint)TW.Size) & d.AddressMask);
        FarJump(cpu, selector, offset);
    }

    private static void FarJump(Cpu cpu, ushort selector, uint offset)
    {
        LoadCodeSegment(cpu, selector, offset, returning: false);
        cpu.Eip = offset;
        cpu.Stop |= Cpu.StopJumped;
    }

    /// <summary>CALL rel / r/m: the target is read (and checked) before the return address is pushed.</summary>
    private static class CallNear<TW, TTarget>
        where TW : IWidth
        where TTarget : IOperand
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            uint target = TTarget.Read<TW>(cpu, ref d);
            CheckTarget(cpu, target);
            StackOps.Push<TW>(cpu, d.NextIp);
            cpu.Eip = target;
            cpu.Stop |= Cpu.StopJumped;
        }
    }

    private static void CallFar<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth => FarCall<TW>(cpu, ref d, (ushort)d.Imm2, d.Imm);

    private static void CallFarIndirect<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth
    {
        uint address = cpu.Address(ref d);
        uint offset = TW.Read(cpu, d.Segment, address);
        ushort selector = cpu.Read16(d.Segment, (address + (uint)TW.Size) & d.AddressMask);
        FarCall<TW>(cpu, ref d, selector, offset);
    }

    /// <summary>
    /// Far CALL: CS then the return EIP go on the stack (a 32-bit push zero-extends CS). Both are written before CS
    /// is loaded, and ESP moves only after the load, so a fault in either leaves ESP and CS as they were.
    /// </summary>
    private static void FarCall<TW>(Cpu cpu, ref DecodedInstruction d, ushort selector, uint offset)
        where TW : IWidth
    {
        uint mask = cpu.StackMask;
        uint esp = cpu.Regs[RegisterIndex.Esp];
        uint size = (uint)TW.Size;
        TW.Write(cpu, SegmentIndex.Ss, (esp - size) & mask, cpu.Segments[SegmentIndex.Cs].Selector);
        TW.Write(cpu, SegmentIndex.Ss, (esp - (2 * size)) & mask, d.NextIp);
        LoadCodeSegment(cpu, selector, offset, returning: false);
        cpu.Regs[RegisterIndex.Esp] = (esp & ~mask) | ((esp - (2 * size)) & mask);
        cpu.Eip = offset;
        cpu.Stop |= Cpu.StopJumped;
    }

    /// <summary>
    /// Loads CS for a far transfer and checks the new EIP against the new limit; when that fails CS and CPL are put
    /// back, so the #GP leaves nothing changed.
    /// </summary>
    private static void LoadCodeSegment(Cpu cpu, ushort selector, uint offset, bool returning)
    {
        Segment saved = cpu.Segments[SegmentIndex.Cs];
        int cpl = cpu.Cpl;
        cpu.LoadCodeSegment(selector, returning);
        if (offset > cpu.Segments[SegmentIndex.Cs].Limit)
        {
            cpu.LoadSegmentCache(SegmentIndex.Cs, saved);
            cpu.Cpl = cpl;
            ThrowGeneralProtection();
        }
    }

    // Returns.

    /// <summary>RET / RET imm16: pops EIP, then releases imm16 more bytes.</summary>
    private static void ReturnNear<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth
    {
        uint target = cpu.PeekStack(0, TW.Size);
        CheckTarget(cpu, target);
        cpu.Regs[RegisterIndex.Esp] = StackOps.MovedStackPointer(cpu, (uint)TW.Size + d.Imm);
        cpu.Eip = target;
        cpu.Stop |= Cpu.StopJumped;
    }

    /// <summary>RETF / RETF imm16: same privilege level, or (protected mode, RPL &gt; CPL) an outer one.</summary>
    private static void ReturnFar<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth
    {
        uint size = (uint)TW.Size;
        uint offset = cpu.PeekStack(0, TW.Size);
        ushort selector = (ushort)cpu.PeekStack(size, TW.Size);
        FarReturn<TW>(cpu, selector, offset, (2 * size) + d.Imm, d.Imm);
        cpu.Eip = offset;
        cpu.Stop |= Cpu.StopJumped;
    }

    /// <summary>
    /// The CS and stack part of RETF and IRET, once EIP, CS (and EFLAGS) have been read: <paramref name="frame"/>
    /// bytes are released on the current stack; on a return to an outer level SS:ESP follow them and
    /// <paramref name="release"/> is also released on the outer stack, and data segments the outer level may not
    /// use are nulled.
    /// </summary>
    private static void FarReturn<TW>(Cpu cpu, ushort selector, uint offset, uint frame, uint release)
        where TW : IWidth
    {
        if (!cpu.ProtectedMode || (selector & 3) <= cpu.Cpl)
        {
            // Same level (an inner RPL is refused by the load).
            LoadCodeSegment(cpu, selector, offset, returning: true);
            cpu.Regs[RegisterIndex.Esp] = StackOps.MovedStackPointer(cpu, frame);
            return;
        }

        uint outerEsp = cpu.PeekStack(frame, TW.Size);
        ushort outerSs = (ushort)cpu.PeekStack(frame + (uint)TW.Size, TW.Size);
        Segment savedCs = cpu.Segments[SegmentIndex.Cs];
        int cpl = cpu.Cpl;
        LoadCodeSegment(cpu, selector, offset, returning: true);
        try
        {
            // Checked against the new CPL, which the CS load just set.
            cpu.LoadSegment(SegmentIndex.Ss, outerSs);
        }
        catch (CpuException)
        {
            cpu.LoadSegmentCache(SegmentIndex.Cs, savedCs);
            cpu.Cpl = cpl;
            throw;
        }

        uint mask = cpu.StackMask;
        cpu.Regs[RegisterIndex.Esp] = (cpu.Regs[RegisterIndex.Esp] & ~mask) | ((outerEsp + release) & mask);
        cpu.InvalidateInnerSegments();
    }

    /// <summary>
    /// IRET/IRETD: pops EIP, CS, EFLAGS (and at an outer level ESP, SS). The flags it may change are POPF's at the
    /// old CPL, plus RF; a 16-bit IRET changes only the low 16. Task returns (NT set) and returns to virtual-8086
    /// mode are not implemented and raise #GP(0). The block ends: IF or TF may have changed.
    /// </summary>
    private static void InterruptReturn<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth
    {
        uint size = (uint)TW.Size;
        if (cpu.ProtectedMode && (cpu.FlagsRest & Cpu.NT) != 0)
        {
            ThrowGeneralProtection();
        }

        uint offset = cpu.PeekStack(0, TW.Size);
        ushort selector = (ushort)cpu.PeekStack(size, TW.Size);
        uint flags = cpu.PeekStack(2 * size, TW.Size);
        if (cpu.ProtectedMode && TW.Size == 4 && (flags & Cpu.VM) != 0 && cpu.Cpl == 0)
        {
            ThrowGeneralProtection();
        }

        uint writable = (FlagControl.PopfWritable(cpu) | Cpu.RF) & TW.Mask;
        FarReturn<TW>(cpu, selector, offset, 3 * size, 0);
        cpu.SetEflags(flags, writable);
        cpu.Eip = offset;
        cpu.Stop |= Cpu.StopJumped;
    }

    // LOOP and JCXZ.

    /// <summary>What LOOPcc needs besides a non-zero counter.</summary>
    private interface ILoopCondition
    {
        static abstract bool Holds(Cpu cpu);
    }

    private readonly struct Always : ILoopCondition
    {
        public static bool Holds(Cpu cpu) => true;
    }

    private readonly struct WhileZero : ILoopCondition
    {
        public static bool Holds(Cpu cpu) => cpu.Condition(4);
    }

    private readonly struct WhileNotZero : ILoopCondition
    {
        public static bool Holds(Cpu cpu) => cpu.Condition(5);
    }

    /// <summary>LOOPcc: decrements CX or ECX (no flags change) and jumps while it is not zero and the condition holds.</summary>
    private static class Loop<TA, TCondition>
        where TA : IAddressSize
        where TCondition : ILoopCondition
    {
        public static void Run(Cpu cpu, ref DecodedInstruction d)
        {
            uint count = (TA.Get(cpu, RegisterIndex.Ecx) - 1) & TA.Mask;
            bool taken = count != 0 && TCondition.Holds(cpu);
            if (taken)
            {
                CheckTarget(cpu, d.Imm);
            }

            TA.Set(cpu, RegisterIndex.Ecx, count);
            if (taken)
            {
                cpu.Eip = d.Imm;
                cpu.Stop |= Cpu.StopJumped;
            }
        }
    }

    /// <summary>JCXZ (CX) / JECXZ (ECX): the register is the address size's, as the mnemonic says.</summary>
    private static void JumpIfCounterZero<TA>(Cpu cpu, ref DecodedInstruction d)
        where TA : IAddressSize => JumpIf(cpu, ref d, TA.Get(cpu, RegisterIndex.Ecx) == 0);

    // Interrupts.

    /// <summary>
    /// INT n. EIP is brought up to date first: a fault while delivering (a short IVT, a gate the CPL may not use) is
    /// delivered as an exception of this instruction, at <see cref="Cpu.Eip"/>.
    /// </summary>
    private static void Interrupt(Cpu cpu, ref DecodedInstruction d) => SoftwareInterrupt(cpu, ref d, (byte)d.Imm);

    private static void Breakpoint(Cpu cpu, ref DecodedInstruction d) => SoftwareInterrupt(cpu, ref d, ExceptionVector.Breakpoint);

    /// <summary>INTO: #OF (a trap, returning past the INTO) when OF is set, else nothing.</summary>
    private static void InterruptOnOverflow(Cpu cpu, ref DecodedInstruction d)
    {
        if (cpu.Condition(0))
        {
            SoftwareInterrupt(cpu, ref d, ExceptionVector.Overflow);
        }
    }

    private static void SoftwareInterrupt(Cpu cpu, ref DecodedInstruction d, byte vector)
    {
        cpu.Eip = d.Ip;
        cpu.SoftwareInterrupt(vector, d.NextIp);
        cpu.Stop |= Cpu.StopJumped;
    }

    // Frames.

    /// <summary>
    /// ENTER alloc, level (QEMU's order): push (E)BP; copy level − 1 frame pointers from the old frame; push the new
    /// frame pointer; (E)BP = the new frame, (E)SP below it and the allocation. Every store is made before any
    /// register changes, so a stack fault leaves ESP and EBP as they were.
    /// </summary>
    private static void Enter<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth
    {
        uint size = (uint)TW.Size;
        uint level = d.Imm2 & 31;
        uint mask = cpu.StackMask;
        uint esp = cpu.Regs[RegisterIndex.Esp];
        uint ebp = cpu.Regs[RegisterIndex.Ebp];
        uint frame = esp - size;
        TW.Write(cpu, SegmentIndex.Ss, frame & mask, ebp & TW.Mask);
        if (level != 0)
        {
            for (uint n = 1; n < level; n++)
            {
                uint pointer = TW.Read(cpu, SegmentIndex.Ss, (ebp - (n * size)) & mask);
                TW.Write(cpu, SegmentIndex.Ss, (frame - (n * size)) & mask, pointer);
            }

            TW.Write(cpu, SegmentIndex.Ss, (frame - (level * size)) & mask, frame & TW.Mask);
        }

        uint top = frame - (level * size) - (d.Imm & 0xFFFF);
        TW.SetReg(cpu, RegisterIndex.Ebp, frame);
        cpu.Regs[RegisterIndex.Esp] = (esp & ~mask) | (top & mask);
    }

    /// <summary>LEAVE: (E)SP = (E)BP (in the stack pointer's width), then pop (E)BP; the pop is read before anything changes.</summary>
    private static void Leave<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth
    {
        uint mask = cpu.StackMask;
        uint ebp = cpu.Regs[RegisterIndex.Ebp];
        uint value = TW.Read(cpu, SegmentIndex.Ss, ebp & mask);
        uint esp = cpu.Regs[RegisterIndex.Esp];
        cpu.Regs[RegisterIndex.Esp] = (esp & ~mask) | ((ebp + (uint)TW.Size) & mask);
        TW.SetReg(cpu, RegisterIndex.Ebp, value);
    }

    /// <summary>BOUND r, m: #BR (a fault) unless lower ≤ r ≤ upper, all signed, the bounds at m and m + size.</summary>
    private static void Bound<TW>(Cpu cpu, ref DecodedInstruction d)
        where TW : IWidth
    {
        uint address = cpu.Address(ref d);
        int index = (int)TW.SignExtend(TW.GetReg(cpu, d.R0));
        int lower = (int)TW.SignExtend(TW.Read(cpu, d.Segment, address));
        int upper = (int)TW.SignExtend(TW.Read(cpu, d.Segment, (address + (uint)TW.Size) & d.AddressMask));
        if (index < lower || index > upper)
        {
            throw new CpuException(ExceptionVector.BoundRange);
        }
    }
}
