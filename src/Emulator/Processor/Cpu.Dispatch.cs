using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Instructions;

namespace Vmm.Emulator.Processor;

/// <summary>
/// Running one block: each instruction's handler, through its function pointer or, for the commonest forms
/// (<see cref="InlineForm"/>), compiled into this loop's switch. An inline register form cannot fault or end the
/// block, so the loop goes straight on to the next instruction; every other form is followed by the
/// <see cref="Stop"/> check. Semantics are the handlers' own: the switch calls the very methods the binder chose.
/// </summary>
public sealed unsafe partial class Cpu
{
    /// <summary>The index in its block of the instruction running now, for a fault's EIP; kept only before forms that can fault.</summary>
    private int current;

    /// <remarks>
    /// This method and <see cref="RunInstructions"/> are compiled fully optimized at once, as <see cref="Run"/> is.
    /// Tiering would have them interpreted at tier 0 for a process's first second or more (call counting waits until
    /// no new method has been compiled for 100 ms, which a busy VMM seldom gives it), then recompile
    /// RunInstructions, 15 KiB of machine code, on a background thread that takes 5–25 ms of a core: on a 2-core host
    /// that lands inside whatever runs then, a migration's downtime included.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ExecuteBlock(Block block, int count)
    {
        byte shadowAtEntry = InterruptShadow;
        try
        {
            RunInstructions(block.Instructions, count);
        }
        catch (CpuException exception)
        {
            // A fault: EIP points at the instruction, so that the handler may return to retry it.
            Stop = 0;
            Eip = block.Instructions[current].Ip;
            DeliverException(exception);
            Stop = 0;
        }

        if (shadowAtEntry != 0 && InterruptShadow == shadowAtEntry)
        {
            InterruptShadow = 0;
        }
    }

    /// <remarks>
    /// Apart from <see cref="ExecuteBlock"/>'s try/catch on purpose: inside a protected region the JIT keeps the loop
    /// index and <c>this</c> on the stack, to be seen by the handler; here they stay in registers, and the index the
    /// handler needs is written to <see cref="current"/> only before a form that can fault.
    /// </remarks>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private void RunInstructions(DecodedInstruction[] instructions, int count)
    {
        // count is the block's length or 1 (single-step): within the array, so no bounds check is needed.
        ref DecodedInstruction first = ref MemoryMarshal.GetArrayDataReference(instructions);
        for (int i = 0; i < count; i++)
        {
            ref DecodedInstruction d = ref Unsafe.Add(ref first, i);
            switch (d.Form)
            {
                case InlineForm.None:
                    current = i;
                    d.Execute(this, ref d);
                    break;
                case InlineForm.AddRegReg32:
                    Arithmetic.Binary<Arithmetic.Add, W32, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.AddRegImm32:
                    Arithmetic.Binary<Arithmetic.Add, W32, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.AddRegReg16:
                    Arithmetic.Binary<Arithmetic.Add, W16, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.AddRegImm16:
                    Arithmetic.Binary<Arithmetic.Add, W16, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.AdcRegReg32:
                    Arithmetic.Binary<Arithmetic.Adc, W32, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.AdcRegImm32:
                    Arithmetic.Binary<Arithmetic.Adc, W32, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.AdcRegReg16:
                    Arithmetic.Binary<Arithmetic.Adc, W16, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.AdcRegImm16:
                    Arithmetic.Binary<Arithmetic.Adc, W16, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.SubRegReg32:
                    Arithmetic.Binary<Arithmetic.Sub, W32, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.SubRegImm32:
                    Arithmetic.Binary<Arithmetic.Sub, W32, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.SubRegReg16:
                    Arithmetic.Binary<Arithmetic.Sub, W16, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.SubRegImm16:
                    Arithmetic.Binary<Arithmetic.Sub, W16, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.SbbRegReg32:
                    Arithmetic.Binary<Arithmetic.Sbb, W32, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.SbbRegImm32:
                    Arithmetic.Binary<Arithmetic.Sbb, W32, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.SbbRegReg16:
                    Arithmetic.Binary<Arithmetic.Sbb, W16, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.SbbRegImm16:
                    Arithmetic.Binary<Arithmetic.Sbb, W16, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.CmpRegReg32:
                    Arithmetic.Binary<Arithmetic.Cmp, W32, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.CmpRegImm32:
                    Arithmetic.Binary<Arithmetic.Cmp, W32, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.CmpRegReg16:
                    Arithmetic.Binary<Arithmetic.Cmp, W16, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.CmpRegImm16:
                    Arithmetic.Binary<Arithmetic.Cmp, W16, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.AndRegReg32:
                    Arithmetic.Binary<Arithmetic.And, W32, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.AndRegImm32:
                    Arithmetic.Binary<Arithmetic.And, W32, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.AndRegReg16:
                    Arithmetic.Binary<Arithmetic.And, W16, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.AndRegImm16:
                    Arithmetic.Binary<Arithmetic.And, W16, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.OrRegReg32:
                    Arithmetic.Binary<Arithmetic.Or, W32, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.OrRegImm32:
                    Arithmetic.Binary<Arithmetic.Or, W32, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.OrRegReg16:
                    Arithmetic.Binary<Arithmetic.Or, W16, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.OrRegImm16:
                    Arithmetic.Binary<Arithmetic.Or, W16, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.XorRegReg32:
                    Arithmetic.Binary<Arithmetic.Xor, W32, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.XorRegImm32:
                    Arithmetic.Binary<Arithmetic.Xor, W32, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.XorRegReg16:
                    Arithmetic.Binary<Arithmetic.Xor, W16, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.XorRegImm16:
                    Arithmetic.Binary<Arithmetic.Xor, W16, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.TestRegReg32:
                    Arithmetic.Binary<Arithmetic.Test, W32, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.TestRegImm32:
                    Arithmetic.Binary<Arithmetic.Test, W32, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.TestRegReg16:
                    Arithmetic.Binary<Arithmetic.Test, W16, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.TestRegImm16:
                    Arithmetic.Binary<Arithmetic.Test, W16, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.IncReg32:
                    Arithmetic.Unary<Arithmetic.Inc, W32, Reg0>.Run(this, ref d);
                    continue;
                case InlineForm.IncReg16:
                    Arithmetic.Unary<Arithmetic.Inc, W16, Reg0>.Run(this, ref d);
                    continue;
                case InlineForm.DecReg32:
                    Arithmetic.Unary<Arithmetic.Dec, W32, Reg0>.Run(this, ref d);
                    continue;
                case InlineForm.DecReg16:
                    Arithmetic.Unary<Arithmetic.Dec, W16, Reg0>.Run(this, ref d);
                    continue;
                case InlineForm.ShlRegImm32:
                    Shifts.Shift<Shifts.Shl, W32, Reg0, Shifts.CountImm>.Run(this, ref d);
                    continue;
                case InlineForm.ShlRegImm16:
                    Shifts.Shift<Shifts.Shl, W16, Reg0, Shifts.CountImm>.Run(this, ref d);
                    continue;
                case InlineForm.ShrRegImm32:
                    Shifts.Shift<Shifts.Shr, W32, Reg0, Shifts.CountImm>.Run(this, ref d);
                    continue;
                case InlineForm.ShrRegImm16:
                    Shifts.Shift<Shifts.Shr, W16, Reg0, Shifts.CountImm>.Run(this, ref d);
                    continue;
                case InlineForm.SarRegImm32:
                    Shifts.Shift<Shifts.Sar, W32, Reg0, Shifts.CountImm>.Run(this, ref d);
                    continue;
                case InlineForm.SarRegImm16:
                    Shifts.Shift<Shifts.Sar, W16, Reg0, Shifts.CountImm>.Run(this, ref d);
                    continue;
                case InlineForm.RolRegImm32:
                    Shifts.Shift<Shifts.Rol, W32, Reg0, Shifts.CountImm>.Run(this, ref d);
                    continue;
                case InlineForm.RolRegImm16:
                    Shifts.Shift<Shifts.Rol, W16, Reg0, Shifts.CountImm>.Run(this, ref d);
                    continue;
                case InlineForm.RorRegImm32:
                    Shifts.Shift<Shifts.Ror, W32, Reg0, Shifts.CountImm>.Run(this, ref d);
                    continue;
                case InlineForm.RorRegImm16:
                    Shifts.Shift<Shifts.Ror, W16, Reg0, Shifts.CountImm>.Run(this, ref d);
                    continue;
                case InlineForm.MovRegReg32:
                    Moves.Move<W32, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.MovRegImm32:
                    Moves.Move<W32, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.MovRegReg16:
                    Moves.Move<W16, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.MovRegImm16:
                    Moves.Move<W16, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.MovRegReg8:
                    Moves.Move<W8, Reg0, Reg1>.Run(this, ref d);
                    continue;
                case InlineForm.MovRegImm8:
                    Moves.Move<W8, Reg0, Imm>.Run(this, ref d);
                    continue;
                case InlineForm.RolRegImm32FlagsUnread:
                    RotateFlagsUnread<Shifts.RolFlagsUnread, Shifts.Rol, W32>(ref d, nextRuns: i + 1 < count);
                    continue;
                case InlineForm.RolRegImm16FlagsUnread:
                    RotateFlagsUnread<Shifts.RolFlagsUnread, Shifts.Rol, W16>(ref d, nextRuns: i + 1 < count);
                    continue;
                case InlineForm.RorRegImm32FlagsUnread:
                    RotateFlagsUnread<Shifts.RorFlagsUnread, Shifts.Ror, W32>(ref d, nextRuns: i + 1 < count);
                    continue;
                case InlineForm.RorRegImm16FlagsUnread:
                    RotateFlagsUnread<Shifts.RorFlagsUnread, Shifts.Ror, W16>(ref d, nextRuns: i + 1 < count);
                    continue;
                case InlineForm.MovRegMem32:
                    current = i;
                    Moves.Move<W32, Reg0, Mem>.Run(this, ref d);
                    break;
                case InlineForm.MovMemReg32:
                    current = i;
                    Moves.Move<W32, Mem, Reg1>.Run(this, ref d);
                    break;
                case InlineForm.MovMemImm32:
                    current = i;
                    Moves.Move<W32, Mem, Imm>.Run(this, ref d);
                    break;
                case InlineForm.IncMem32:
                    current = i;
                    Arithmetic.Unary<Arithmetic.Inc, W32, Mem>.Run(this, ref d);
                    break;
                case InlineForm.MovRegMem16:
                    current = i;
                    Moves.Move<W16, Reg0, Mem>.Run(this, ref d);
                    break;
                case InlineForm.MovMemReg16:
                    current = i;
                    Moves.Move<W16, Mem, Reg1>.Run(this, ref d);
                    break;
                case InlineForm.MovMemImm16:
                    current = i;
                    Moves.Move<W16, Mem, Imm>.Run(this, ref d);
                    break;
                case InlineForm.IncMem16:
                    current = i;
                    Arithmetic.Unary<Arithmetic.Inc, W16, Mem>.Run(this, ref d);
                    break;
                case InlineForm.MovRegMem8:
                    current = i;
                    Moves.Move<W8, Reg0, Mem>.Run(this, ref d);
                    break;
                case InlineForm.MovMemReg8:
                    current = i;
                    Moves.Move<W8, Mem, Reg1>.Run(this, ref d);
                    break;
                case InlineForm.MovMemImm8:
                    current = i;
                    Moves.Move<W8, Mem, Imm>.Run(this, ref d);
                    break;
                case InlineForm.IncMem8:
                    current = i;
                    Arithmetic.Unary<Arithmetic.Inc, W8, Mem>.Run(this, ref d);
                    break;
                case InlineForm.JumpIf0:
                    current = i;
                    ControlFlow.JumpIf0(this, ref d);
                    break;
                case InlineForm.JumpIf1:
                    current = i;
                    ControlFlow.JumpIf1(this, ref d);
                    break;
                case InlineForm.JumpIf2:
                    current = i;
                    ControlFlow.JumpIf2(this, ref d);
                    break;
                case InlineForm.JumpIf3:
                    current = i;
                    ControlFlow.JumpIf3(this, ref d);
                    break;
                case InlineForm.JumpIf4:
                    current = i;
                    ControlFlow.JumpIf4(this, ref d);
                    break;
                case InlineForm.JumpIf5:
                    current = i;
                    ControlFlow.JumpIf5(this, ref d);
                    break;
                case InlineForm.JumpIf6:
                    current = i;
                    ControlFlow.JumpIf6(this, ref d);
                    break;
                case InlineForm.JumpIf7:
                    current = i;
                    ControlFlow.JumpIf7(this, ref d);
                    break;
                case InlineForm.JumpIf8:
                    current = i;
                    ControlFlow.JumpIf8(this, ref d);
                    break;
                case InlineForm.JumpIf9:
                    current = i;
                    ControlFlow.JumpIf9(this, ref d);
                    break;
                case InlineForm.JumpIf10:
                    current = i;
                    ControlFlow.JumpIf10(this, ref d);
                    break;
                case InlineForm.JumpIf11:
                    current = i;
                    ControlFlow.JumpIf11(this, ref d);
                    break;
                case InlineForm.JumpIf12:
                    current = i;
                    ControlFlow.JumpIf12(this, ref d);
                    break;
                case InlineForm.JumpIf13:
                    current = i;
                    ControlFlow.JumpIf13(this, ref d);
                    break;
                case InlineForm.JumpIf14:
                    current = i;
                    ControlFlow.JumpIf14(this, ref d);
                    break;
                case InlineForm.JumpIf15:
                    current = i;
                    ControlFlow.JumpIf15(this, ref d);
                    break;
            }

            if (Stop != 0)
            {
                if ((Stop & StopJumped) == 0)
                {
                    Eip = d.NextIp;
                }

                Stop = 0;
                return;
            }
        }

        Eip = instructions[count - 1].NextIp;
    }

    /// <summary>
    /// A register rotate whose flags the next instruction overwrites unread (<see cref="FlagLiveness"/>): without
    /// them when that instruction runs in this same loop, in full when the loop stops after the rotate (single-step),
    /// so that its flags are then what the debugger sees.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void RotateFlagsUnread<TUnread, TFull, TW>(ref DecodedInstruction d, bool nextRuns)
        where TUnread : Shifts.IShiftOp
        where TFull : Shifts.IShiftOp
        where TW : IWidth
    {
        if (nextRuns)
        {
            Shifts.Shift<TUnread, TW, Reg0, Shifts.CountImm>.Run(this, ref d);
        }
        else
        {
            Shifts.Shift<TFull, TW, Reg0, Shifts.CountImm>.Run(this, ref d);
        }
    }
}
