namespace Vmm.Emulator.Processor;

/// <summary>
/// How the arithmetic flags are to be computed from <see cref="Cpu"/>'s CcDst, CcSrc and CcSrc2 (lazy flags, as
/// QEMU's cc_op and Bochs's lazy_flags): an instruction records its operands and result and the kind of operation,
/// and the six flags are derived only when something reads them. The per-operation formulas (<see cref="LazyFlags"/>)
/// are QEMU's, so where Intel leaves a flag undefined this CPU gives what QEMU's TCG gives. Operations that depend
/// on the width come in threes: 8, 16 and 32 bits.
/// </summary>
public enum FlagOp : byte
{
    /// <summary>The flags themselves are in CcSrc.</summary>
    Eflags,

    /// <summary>CcDst = low result, CcSrc = non-zero when the high half is significant (CF = OF = that).</summary>
    Mul8, Mul16, Mul32,

    /// <summary>CcDst = result, CcSrc = second operand.</summary>
    Add8, Add16, Add32,

    /// <summary>CcDst = result, CcSrc = second operand, CcSrc2 = carry in.</summary>
    Adc8, Adc16, Adc32,

    /// <summary>CcDst = result, CcSrc = second operand.</summary>
    Sub8, Sub16, Sub32,

    /// <summary>CcDst = result, CcSrc = second operand, CcSrc2 = borrow in.</summary>
    Sbb8, Sbb16, Sbb32,

    /// <summary>CcDst = result; CF = OF = AF = 0.</summary>
    Logic8, Logic16, Logic32,

    /// <summary>CcDst = result, CcSrc = the carry flag from before (INC keeps CF).</summary>
    Inc8, Inc16, Inc32,

    /// <summary>CcDst = result, CcSrc = the carry flag from before (DEC keeps CF).</summary>
    Dec8, Dec16, Dec32,

    /// <summary>CcDst = result, CcSrc = the value shifted by one less than the count (its top bit is CF).</summary>
    Shl8, Shl16, Shl32,

    /// <summary>CcDst = result, CcSrc = the value shifted by one less than the count (its low bit is CF).</summary>
    Sar8, Sar16, Sar32,

    /// <summary>CcSrc = the other flags, CcDst = CF, CcSrc2 = OF (rotates set only those two).</summary>
    Adcox,
}
