namespace Vmm.CpuSemantics.Tests.Cases;

/// <summary>How a memory operand of a case reaches the data area.</summary>
public enum AddressingMode
{
    /// <summary>[bx], DS = data segment.</summary>
    Bx,

    /// <summary>[bx+si+disp8], DS = data segment (the sum wraps at 64 KiB).</summary>
    BxSiDisp8,

    /// <summary>[bp+di+disp16], SS = data segment (BP-based addresses default to SS).</summary>
    BpDiDisp16,

    /// <summary>[ebx] with a 32-bit address (0x67 prefix), DS = data segment, EBX = the offset (upper half 0).</summary>
    Ebx32,

    /// <summary>[ebx+esi*4+disp32], DS = data segment, the parts large but adding up (mod 2^32) to a small offset.</summary>
    EbxEsiScaled32,
}
