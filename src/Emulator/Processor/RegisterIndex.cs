namespace Vmm.Emulator.Processor;

/// <summary>
/// General registers in x86 encoding order, plus a slot that always reads zero: a decoded memory operand with no
/// base or no index names it, so an effective address is computed without a branch.
/// </summary>
public static class RegisterIndex
{
    public const int Eax = 0;
    public const int Ecx = 1;
    public const int Edx = 2;
    public const int Ebx = 3;
    public const int Esp = 4;
    public const int Ebp = 5;
    public const int Esi = 6;
    public const int Edi = 7;

    /// <summary>Always zero: "no register" in an address.</summary>
    public const int Zero = 8;

    /// <summary>Slots in the register file (a few spare, for alignment).</summary>
    public const int FileSize = 12;

    /// <summary>The byte offset in the register file of an 8-bit register: AL CL DL BL, then AH CH DH BH.</summary>
    public static int ByteOffset(int encoding) => encoding < 4 ? encoding * 4 : ((encoding - 4) * 4) + 1;
}
