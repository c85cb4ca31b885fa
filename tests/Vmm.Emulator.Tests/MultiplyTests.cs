using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

public sealed class MultiplyTests
{
    [Theory]
    [InlineData("mov al, 0x10\nmov bl, 0x10\nmul bl", "", "ax=100", "CPZO")] // SF ZF PF of the low half (QEMU)
    [InlineData("mov ax, 0xFF03\nmov bl, 5\nmul bl", "CO", "ax=f", "P")]
    [InlineData("mov ax, 0x1234\nmov word [0x500], 0x100\nmul word [0x500]", "", "ax=3400 dx=12", "CPO")]
    [InlineData("mov ax, 0x1234\nmov dx, 0xFFFF\nmov cx, 2\nmul cx", "", "ax=2468 dx=0", "-")]
    [InlineData("mov eax, 0xFFFFFFFF\nmov ecx, 0xFFFFFFFF\nmul ecx", "", "eax=1 edx=fffffffe", "CO")]
    [InlineData("mov eax, 0x80000000\nmov dword [0x500], 2\nmul dword [0x500]", "", "eax=0 edx=1", "CPZO")]
    public void UnsignedMultiply(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov al, 0x80\nmov bl, 1\nimul bl", "", "ax=ff80", "S")]
    [InlineData("mov al, 0x80\nmov bl, 0xFF\nimul bl", "", "ax=80", "CSO")] // 128 does not fit a signed byte
    [InlineData("mov al, 0xFF\nmov byte [0x500], 0xFF\nimul byte [0x500]", "", "ax=1", "-")]
    [InlineData("mov ax, 0x100\nmov bx, 0x100\nimul bx", "", "ax=0 dx=1", "CPZO")]
    [InlineData("mov ax, 0xFFFF\nmov bx, 0x7FFF\nimul bx", "", "ax=8001 dx=ffff", "S")]
    [InlineData("mov eax, -2\nmov ebx, 3\nimul ebx", "", "eax=fffffffa edx=ffffffff", "PS")]
    [InlineData("mov eax, 0x40000000\nmov ebx, 2\nimul ebx", "", "eax=80000000 edx=0", "CPSO")]
    [InlineData("mov eax, 0x80000000\nmov dword [0x500], 0xFFFFFFFF\nimul dword [0x500]", "", "eax=80000000 edx=0", "CPSO")]
    public void SignedMultiplyIntoAccumulator(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov ax, 300\nmov bx, 300\nimul ax, bx", "", "ax=5f90 dx=0", "CPO")]
    [InlineData("mov ax, -300\nmov bx, 100\nimul ax, bx", "CO", "ax=8ad0", "S")]
    [InlineData("mov dword [0x500], -3\nmov ecx, 7\nimul ecx, [0x500]", "", "ecx=ffffffeb", "PS")]
    [InlineData("mov eax, 0x10000\nmov ebx, 0x8000\nimul eax, ebx", "", "eax=80000000", "CPSO")]
    [InlineData("mov word [0x500], 0x7FFF\nmov si, 0xFFFF\nimul si, [0x500]", "", "si=8001", "S")]
    [InlineData("mov bx, -2\nimul ax, bx, -3", "", "ax=6", "P")]
    [InlineData("mov ebx, 0x10000\nimul eax, ebx, 0x10000", "", "eax=0", "CPZO")]
    [InlineData("mov word [0x500], 0x4000\nimul cx, [0x500], 2", "", "cx=8000", "CPSO")]
    [InlineData("mov word [0x500], 0x4000\nimul cx, [0x500], 0x1000", "", "cx=0", "CPZO")]
    [InlineData("mov dword [0x500], 0x7FFFFFFF\nimul edx, [0x500], -1", "", "edx=80000001", "S")]
    public void SignedMultiplyTruncating(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov ax, 1000\nmov bl, 7\ndiv bl", "CZ", "ax=68e", "CZ")] // flags stay as they were (QEMU)
    [InlineData("mov ax, 0xFE00\nmov byte [0x500], 0xFF\ndiv byte [0x500]", "", "ax=fefe", "-")] // 65024 = 254 * 255 + 254
    [InlineData("mov dx, 1\nmov ax, 0\nmov cx, 3\ndiv cx", "SO", "ax=5555 dx=1", "SO")]
    [InlineData("mov edx, 1\nmov eax, 0\nmov dword [0x500], 0x10\ndiv dword [0x500]", "", "eax=10000000 edx=0", "-")]
    [InlineData("mov edx, 0xFFFFFFFE\nmov eax, 0xFFFFFFFF\nmov ecx, 0xFFFFFFFF\ndiv ecx", "", "eax=ffffffff edx=fffffffe", "-")]
    public void UnsignedDivide(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov ax, -7\nmov bl, 2\nidiv bl", "P", "ax=fffd", "P")] // -3 remainder -1: the remainder has the dividend's sign
    [InlineData("mov ax, 0xFF00\nmov bl, 2\nidiv bl", "", "ax=80", "-")] // -128 fits
    [InlineData("mov dx, 0xFFFF\nmov ax, -1000\nmov cx, 7\nidiv cx", "", "ax=ff72 dx=fffa", "-")]
    [InlineData("mov edx, 0\nmov eax, 100\nmov ecx, -7\nidiv ecx", "", "eax=fffffff2 edx=2", "-")]
    [InlineData("mov edx, 0xFFFFFFFF\nmov eax, 0x80000000\nmov dword [0x500], 1\nidiv dword [0x500]", "", "eax=80000000 edx=0", "-")]
    public void SignedDivide(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    /// <summary>
    /// #DE: the IVT sends vector 0 to a handler that marks DI and halts. The fault leaves every register as it was and
    /// pushes the address of the faulting instruction.
    /// </summary>
    [Theory]
    [InlineData("mov ax, 0x1234\nmov bl, 0", "div bl")]
    [InlineData("mov ax, 0x1000\nmov bl, 0x10", "div bl")] // quotient 0x100
    [InlineData("mov dx, 0x10\nmov ax, 0\nmov cx, 0x10", "div cx")] // quotient 0x10000
    [InlineData("mov edx, 5\nmov eax, 6\nmov dword [0x500], 0", "div dword [0x500]")]
    [InlineData("mov edx, 1\nmov eax, 0\nmov ecx, 1", "div ecx")]
    [InlineData("mov ax, 256\nmov bl, 2", "idiv bl")] // +128
    [InlineData("mov ax, 0x8000\nmov byte [0x500], 0xFF", "idiv byte [0x500]")] // -32768 / -1
    [InlineData("mov dx, 0x8000\nmov ax, 0\nmov cx, 0xFFFF", "idiv cx")] // -2^31 / -1
    [InlineData("mov edx, 0x80000000\nmov eax, 0\nmov ecx, 0xFFFFFFFF", "idiv ecx")] // -2^63 / -1
    [InlineData("mov edx, 0\nmov eax, 0x80000000\nmov ecx, 1", "idiv ecx")] // +2^31
    [InlineData("mov ax, 0x1234", "aam 0")]
    public void DivideErrorFaultsBeforeChangingAnything(string setup, string instruction)
    {
        using CpuHarness h = FlagSnippet.Run(
            $"""
            mov word [0], handler
            mov word [2], 0
            mov word [0x510], fault
            mov esi, 0x5157
            {setup}
            fault:
            {instruction}
            mov esi, 0x1111  ; not reached
            hlt
            handler:
            mov di, 0x2222
            """,
            "CO");
        Assert.Equal(0x2222u, h.Reg(Vmm.Emulator.Processor.RegisterIndex.Edi) & 0xFFFF);
        Assert.Equal(0x5157u, h.Reg(Vmm.Emulator.Processor.RegisterIndex.Esi));
        Assert.Equal(h.Read16(0x510), h.Read16(CpuHarness.LoadAddress - 6)); // IP, CS, FLAGS pushed
        Assert.Equal(0x0801 | 2, h.Read16(CpuHarness.LoadAddress - 2) & 0x0FFF); // CF OF as they were

        // The registers the instruction would have written are as the setup left them.
        using CpuHarness reference = FlagSnippet.Run(setup, "CO");
        FlagSnippet.AssertRegisters(h, $"eax={reference.Reg(0):x} edx={reference.Reg(2):x}");
    }
}
