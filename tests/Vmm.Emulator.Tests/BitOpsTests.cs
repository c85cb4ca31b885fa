namespace Vmm.Emulator.Tests;

/// <summary>
/// BT BTS BTR BTC BSF BSR. After an operation whose result is in CcDst (ADD, SUB, logic, MUL...) QEMU turns the flags
/// into a SAR of that operation's width: CF is the tested bit, ZF SF PF stay, OF and AF come out of the SAR formula.
/// After anything else (POPF, a rotate) it materializes the flags and replaces CF only.
/// </summary>
public sealed class BitOpsTests
{
    [Theory]
    [InlineData("mov eax, 0x80000001\nmov bx, 0x0F\nadd bx, 1\nbt eax, 0", "", "eax=80000001", "C")] // the ADD's AF is dropped
    [InlineData("mov eax, 0x00010000\nmov bx, 0x0F\nadd bx, 1\nbt ax, 1", "", "eax=10000", "O")] // OF from bit 16 of EAX (QEMU)
    [InlineData("mov ecx, 0xFFFFFFFF\nmov al, 0x80\nsub al, 1\nbt ecx, 31", "", "ecx=ffffffff", "C")] // the SUB's AF and OF are dropped
    [InlineData("mov al, 0x10\nmov bl, 0x10\nmul bl\nmov cx, 0x8000\nbt cx, 15", "", "ax=100", "CPZ")] // ZF of the MUL's low byte stays
    [InlineData("mov eax, 0x10\nmov ecx, 36\nbt eax, ecx", "ZSO", "eax=10", "CZSO")] // offset mod 32
    [InlineData("mov al, 0x80\nrol al, 1\nmov edx, 0\nbt edx, 3", "Z", "al=1", "ZO")]
    [InlineData("mov word [0x500], 2\nbt word [0x500], 17", "", "", "C")] // an immediate offset is taken mod 16
    [InlineData("mov dword [0x500], 0x7FFFFFFF\nbt dword [0x500], 31", "CPAZSO", "", "PAZSO")]
    public void BitTest(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov eax, 1\nmov ebx, 0x80\nand ebx, ebx\nbts eax, 31", "CZ", "eax=80000001", "-")]
    [InlineData("mov eax, 0xFFFF\nmov cx, 0x13\nbtr ax, cx", "", "eax=fff7", "C")]
    [InlineData("mov eax, 0x12340000\nbtc ax, 0", "C", "eax=12340001", "-")]
    [InlineData("mov eax, 0x12340001\nmov ecx, 32\nbtc eax, ecx", "", "eax=12340000", "C")]
    [InlineData("mov dword [0x500], 0\nbtc dword [0x500], 33\nmov eax, [0x500]", "C", "eax=2", "-")]
    [InlineData("mov word [0x500], 0xFFFF\nbtr word [0x500], 15\nmov ax, [0x500]", "", "ax=7fff", "C")]
    [InlineData("mov word [0x500], 0\nmov dx, 4\nbts [0x500], dx\nmov ax, [0x500]", "", "ax=10", "-")]
    public void BitTestAndModify(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    /// <summary>A register offset on a memory operand is signed and addresses whole words or dwords away.</summary>
    [Theory]
    [InlineData("mov word [0x504], 0x0020\nmov ax, 0x25\nbt word [0x500], ax", "", "", "C")] // 37: word 2, bit 5
    [InlineData("mov word [0x4FE], 0x8000\nmov ax, -1\nbtr word [0x500], ax\nmov bx, [0x4FE]", "", "bx=0", "C")]
    [InlineData("mov word [0x4FE], 0x8000\nmov ecx, 0x0001FFFF\nbt word [0x500], cx", "", "", "C")] // CX alone, sign-extended
    [InlineData("mov dword [0x4F8], 0\nmov ecx, -33\nbts dword [0x500], ecx\nmov eax, [0x4F8]", "C", "eax=80000000", "-")]
    [InlineData("mov dword [0x600], 1\nmov ecx, 0x800\nbt dword [0x500], ecx", "", "", "C")] // 2048 bits = 256 bytes on
    [InlineData("mov dword [0x700], 0x1\nmov ecx, 0x800\nbtc dword [0x600], ecx\nmov ebx, [0x700]", "", "ebx=0", "C")]
    [InlineData("mov word [0x0002], 1\nmov bx, 0xFFFE\nmov ax, 0x20\nbt word [bx], ax", "", "", "C")] // wraps at 64 KiB
    [InlineData("mov dword [0x4FC], 0x40000000\nmov si, 0x500\nmov eax, -2\nbt dword [si], eax", "", "", "C")]
    public void BitTestBeyondTheOperand(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov bx, 0x0018\nbsf ax, bx", "", "ax=3", "P")]
    [InlineData("mov eax, 0x12345678\nmov ebx, 0\nbsf eax, ebx", "C", "eax=12345678", "PZ")] // zero: destination unchanged
    [InlineData("mov eax, 0xAAAA5555\nmov bx, 0\nbsf ax, bx", "", "eax=aaaa5555", "PZ")]
    [InlineData("mov eax, 0xFFFFFFFF\nmov bx, 0x4000\nbsf ax, bx", "", "eax=ffff000e", "P")]
    [InlineData("mov dword [0x500], 0x80000000\nbsf edx, [0x500]", "", "edx=1f", "PS")]
    public void BitScanForward(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov ebx, 0x80000001\nbsr eax, ebx", "", "eax=1f", "S")]
    [InlineData("mov dx, 0x8001\nbsr ax, dx", "CO", "ax=f", "S")]
    [InlineData("mov word [0x500], 0x0100\nbsr cx, [0x500]", "", "cx=8", "P")]
    [InlineData("mov dword [0x500], 0\nmov ecx, 0xFFFF\nbsr ecx, [0x500]", "CSO", "ecx=ffff", "PZ")]
    [InlineData("mov ebx, 1\nbsr eax, ebx", "", "eax=0", "-")]
    public void BitScanReverse(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);
}
