using Vmm.Emulator.Instructions;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Decoding;

/// <summary>
/// Which handlers the execution loop runs inline: the binder picks a handler as before, and <see cref="FormOf"/>
/// recognises it by its address, so the choice of a form stays with the instruction families and the loop merely
/// runs the same code without the indirect call.
/// </summary>
internal static unsafe class InlineForms
{
    private static readonly Dictionary<nint, InlineForm> Forms = Create();

    /// <summary>The inline form that runs <paramref name="handler"/>, or <see cref="InlineForm.None"/>.</summary>
    public static InlineForm FormOf(delegate*<Cpu, ref DecodedInstruction, void> handler) =>
        Forms.GetValueOrDefault((nint)handler, InlineForm.None);

    private static Dictionary<nint, InlineForm> Create() => new()
    {
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Add, W32, Reg0, Reg1>.Run] = InlineForm.AddRegReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Add, W32, Reg0, Imm>.Run] = InlineForm.AddRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Add, W16, Reg0, Reg1>.Run] = InlineForm.AddRegReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Add, W16, Reg0, Imm>.Run] = InlineForm.AddRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Adc, W32, Reg0, Reg1>.Run] = InlineForm.AdcRegReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Adc, W32, Reg0, Imm>.Run] = InlineForm.AdcRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Adc, W16, Reg0, Reg1>.Run] = InlineForm.AdcRegReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Adc, W16, Reg0, Imm>.Run] = InlineForm.AdcRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Sub, W32, Reg0, Reg1>.Run] = InlineForm.SubRegReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Sub, W32, Reg0, Imm>.Run] = InlineForm.SubRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Sub, W16, Reg0, Reg1>.Run] = InlineForm.SubRegReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Sub, W16, Reg0, Imm>.Run] = InlineForm.SubRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Sbb, W32, Reg0, Reg1>.Run] = InlineForm.SbbRegReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Sbb, W32, Reg0, Imm>.Run] = InlineForm.SbbRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Sbb, W16, Reg0, Reg1>.Run] = InlineForm.SbbRegReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Sbb, W16, Reg0, Imm>.Run] = InlineForm.SbbRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Cmp, W32, Reg0, Reg1>.Run] = InlineForm.CmpRegReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Cmp, W32, Reg0, Imm>.Run] = InlineForm.CmpRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Cmp, W16, Reg0, Reg1>.Run] = InlineForm.CmpRegReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Cmp, W16, Reg0, Imm>.Run] = InlineForm.CmpRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.And, W32, Reg0, Reg1>.Run] = InlineForm.AndRegReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.And, W32, Reg0, Imm>.Run] = InlineForm.AndRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.And, W16, Reg0, Reg1>.Run] = InlineForm.AndRegReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.And, W16, Reg0, Imm>.Run] = InlineForm.AndRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Or, W32, Reg0, Reg1>.Run] = InlineForm.OrRegReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Or, W32, Reg0, Imm>.Run] = InlineForm.OrRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Or, W16, Reg0, Reg1>.Run] = InlineForm.OrRegReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Or, W16, Reg0, Imm>.Run] = InlineForm.OrRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Xor, W32, Reg0, Reg1>.Run] = InlineForm.XorRegReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Xor, W32, Reg0, Imm>.Run] = InlineForm.XorRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Xor, W16, Reg0, Reg1>.Run] = InlineForm.XorRegReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Xor, W16, Reg0, Imm>.Run] = InlineForm.XorRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Test, W32, Reg0, Reg1>.Run] = InlineForm.TestRegReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Test, W32, Reg0, Imm>.Run] = InlineForm.TestRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Test, W16, Reg0, Reg1>.Run] = InlineForm.TestRegReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Binary<Arithmetic.Test, W16, Reg0, Imm>.Run] = InlineForm.TestRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Unary<Arithmetic.Inc, W32, Reg0>.Run] = InlineForm.IncReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Unary<Arithmetic.Inc, W16, Reg0>.Run] = InlineForm.IncReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Unary<Arithmetic.Dec, W32, Reg0>.Run] = InlineForm.DecReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Unary<Arithmetic.Dec, W16, Reg0>.Run] = InlineForm.DecReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Shifts.Shift<Shifts.Shl, W32, Reg0, Shifts.CountImm>.Run] = InlineForm.ShlRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Shifts.Shift<Shifts.Shl, W16, Reg0, Shifts.CountImm>.Run] = InlineForm.ShlRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Shifts.Shift<Shifts.Shr, W32, Reg0, Shifts.CountImm>.Run] = InlineForm.ShrRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Shifts.Shift<Shifts.Shr, W16, Reg0, Shifts.CountImm>.Run] = InlineForm.ShrRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Shifts.Shift<Shifts.Sar, W32, Reg0, Shifts.CountImm>.Run] = InlineForm.SarRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Shifts.Shift<Shifts.Sar, W16, Reg0, Shifts.CountImm>.Run] = InlineForm.SarRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Shifts.Shift<Shifts.Rol, W32, Reg0, Shifts.CountImm>.Run] = InlineForm.RolRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Shifts.Shift<Shifts.Rol, W16, Reg0, Shifts.CountImm>.Run] = InlineForm.RolRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Shifts.Shift<Shifts.Ror, W32, Reg0, Shifts.CountImm>.Run] = InlineForm.RorRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Shifts.Shift<Shifts.Ror, W16, Reg0, Shifts.CountImm>.Run] = InlineForm.RorRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W32, Reg0, Reg1>.Run] = InlineForm.MovRegReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W32, Reg0, Imm>.Run] = InlineForm.MovRegImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W16, Reg0, Reg1>.Run] = InlineForm.MovRegReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W16, Reg0, Imm>.Run] = InlineForm.MovRegImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W8, Reg0, Reg1>.Run] = InlineForm.MovRegReg8,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W8, Reg0, Imm>.Run] = InlineForm.MovRegImm8,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W32, Reg0, Mem>.Run] = InlineForm.MovRegMem32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W32, Mem, Reg1>.Run] = InlineForm.MovMemReg32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W32, Mem, Imm>.Run] = InlineForm.MovMemImm32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Unary<Arithmetic.Inc, W32, Mem>.Run] = InlineForm.IncMem32,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W16, Reg0, Mem>.Run] = InlineForm.MovRegMem16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W16, Mem, Reg1>.Run] = InlineForm.MovMemReg16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W16, Mem, Imm>.Run] = InlineForm.MovMemImm16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Unary<Arithmetic.Inc, W16, Mem>.Run] = InlineForm.IncMem16,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W8, Reg0, Mem>.Run] = InlineForm.MovRegMem8,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W8, Mem, Reg1>.Run] = InlineForm.MovMemReg8,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Moves.Move<W8, Mem, Imm>.Run] = InlineForm.MovMemImm8,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&Arithmetic.Unary<Arithmetic.Inc, W8, Mem>.Run] = InlineForm.IncMem8,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf0] = InlineForm.JumpIf0,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf1] = InlineForm.JumpIf1,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf2] = InlineForm.JumpIf2,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf3] = InlineForm.JumpIf3,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf4] = InlineForm.JumpIf4,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf5] = InlineForm.JumpIf5,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf6] = InlineForm.JumpIf6,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf7] = InlineForm.JumpIf7,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf8] = InlineForm.JumpIf8,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf9] = InlineForm.JumpIf9,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf10] = InlineForm.JumpIf10,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf11] = InlineForm.JumpIf11,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf12] = InlineForm.JumpIf12,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf13] = InlineForm.JumpIf13,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf14] = InlineForm.JumpIf14,
        [(nint)(delegate*<Cpu, ref DecodedInstruction, void>)&ControlFlow.JumpIf15] = InlineForm.JumpIf15,
    };
}
