namespace Vmm.Emulator.Decoding;

/// <summary>
/// Dead-flag elimination within a block, the little of TCG's liveness analysis an interpreter can use: a rotate
/// (ROL/ROR), which must materialize the four flags it keeps before setting CF and OF, skips all of it when the very
/// next instruction overwrites every arithmetic flag without reading any.
/// </summary>
/// <remarks>
/// Sound because nothing can observe the flags between the two: both are register-only forms that cannot fault,
/// interrupts are taken only between blocks, and the loop runs the full rotate when the block stops right after it
/// (single-step). The next instruction replaces the lazy-flag state that EFLAGS is computed from, so EFLAGS after
/// it is bit for bit what it would have been.
/// </remarks>
internal static class FlagLiveness
{
    public static void EliminateDeadFlags(Span<DecodedInstruction> block)
    {
        for (int i = 0; i + 1 < block.Length; i++)
        {
            ref DecodedInstruction d = ref block[i];
            InlineForm unread = d.Form switch
            {
                InlineForm.RolRegImm32 => InlineForm.RolRegImm32FlagsUnread,
                InlineForm.RolRegImm16 => InlineForm.RolRegImm16FlagsUnread,
                InlineForm.RorRegImm32 => InlineForm.RorRegImm32FlagsUnread,
                InlineForm.RorRegImm16 => InlineForm.RorRegImm16FlagsUnread,
                _ => InlineForm.None,
            };
            if (unread != InlineForm.None && OverwritesAllFlags(in block[i + 1]))
            {
                d.Form = unread;
            }
        }
    }

    /// <summary>
    /// Sets all six arithmetic flags from its own operands and reads none: ADD SUB CMP AND OR XOR TEST (not ADC SBB,
    /// which read CF, nor INC DEC, which keep it), and SHL SHR SAR by a non-zero immediate count (a zero count
    /// leaves the flags alone).
    /// </summary>
    private static bool OverwritesAllFlags(in DecodedInstruction d) => d.Form switch
    {
        InlineForm.AddRegReg32 or InlineForm.AddRegImm32 or InlineForm.AddRegReg16 or InlineForm.AddRegImm16 or
        InlineForm.SubRegReg32 or InlineForm.SubRegImm32 or InlineForm.SubRegReg16 or InlineForm.SubRegImm16 or
        InlineForm.CmpRegReg32 or InlineForm.CmpRegImm32 or InlineForm.CmpRegReg16 or InlineForm.CmpRegImm16 or
        InlineForm.AndRegReg32 or InlineForm.AndRegImm32 or InlineForm.AndRegReg16 or InlineForm.AndRegImm16 or
        InlineForm.OrRegReg32 or InlineForm.OrRegImm32 or InlineForm.OrRegReg16 or InlineForm.OrRegImm16 or
        InlineForm.XorRegReg32 or InlineForm.XorRegImm32 or InlineForm.XorRegReg16 or InlineForm.XorRegImm16 or
        InlineForm.TestRegReg32 or InlineForm.TestRegImm32 or InlineForm.TestRegReg16 or InlineForm.TestRegImm16 => true,
        InlineForm.ShlRegImm32 or InlineForm.ShrRegImm32 or InlineForm.SarRegImm32 or
        InlineForm.ShlRegImm16 or InlineForm.ShrRegImm16 or InlineForm.SarRegImm16 => (d.Imm & 0x1F) != 0,
        _ => false,
    };
}
