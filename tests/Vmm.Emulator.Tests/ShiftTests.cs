using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

/// <summary>
/// Runs a straight-line snippet from given arithmetic flags to HLT and checks registers and the six arithmetic flags.
/// Flags are written as letters (C P A Z S O; "" for none), registers as "al=02 dx=1234". Expected values for flags
/// Intel leaves undefined are QEMU 7.2 TCG's (the CPU matches it on purpose).
/// </summary>
internal static class FlagSnippet
{
    public static CpuHarness Run(string code, string initialFlags)
    {
        var h = new CpuHarness();
        h.Load(code + "\nhlt");
        h.Cpu.Eflags = 2 | Parse(initialFlags);
        CpuStop stop = h.Run();
        Assert.True(stop == CpuStop.Halted, $"expected HLT, got {stop} at EIP 0x{h.Cpu.Eip:x}");
        return h;
    }

    public static void Check(string code, string initialFlags, string expectedRegisters, string expectedFlags)
    {
        using CpuHarness h = Run(code, initialFlags);
        AssertRegisters(h, expectedRegisters);
        Assert.Equal(Format(Parse(expectedFlags)), Format(h.Flags & LazyFlags.ArithmeticMask));
    }

    public static void AssertRegisters(CpuHarness h, string expected)
    {
        foreach (string item in expected.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] parts = item.Split('=');
            uint want = Convert.ToUInt32(parts[1], 16);
            Assert.Equal($"{parts[0]}={want:x}", $"{parts[0]}={RegisterValue(h, parts[0]):x}");
        }
    }

    public static uint RegisterValue(CpuHarness h, string name)
    {
        string[] names32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
        string[] names16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
        string[] names8 = ["al", "cl", "dl", "bl", "ah", "ch", "dh", "bh"];
        int index = Array.IndexOf(names32, name);
        if (index >= 0)
        {
            return h.Reg(index);
        }

        index = Array.IndexOf(names16, name);
        if (index >= 0)
        {
            return h.Reg(index) & 0xFFFF;
        }

        index = Array.IndexOf(names8, name);
        Assert.True(index >= 0, $"no register {name}");
        return index < 4 ? h.Reg(index) & 0xFF : (h.Reg(index - 4) >> 8) & 0xFF;
    }

    public static uint Parse(string flags)
    {
        uint value = 0;
        foreach (char c in flags)
        {
            value |= c switch
            {
                'C' => LazyFlags.CF,
                'P' => LazyFlags.PF,
                'A' => LazyFlags.AF,
                'Z' => LazyFlags.ZF,
                'S' => LazyFlags.SF,
                'O' => LazyFlags.OF,
                '-' => 0,
                _ => throw new ArgumentException($"flag letter {c}"),
            };
        }

        return value;
    }

    public static string Format(uint flags)
    {
        string text = string.Concat(
            (flags & LazyFlags.CF) != 0 ? "C" : "",
            (flags & LazyFlags.PF) != 0 ? "P" : "",
            (flags & LazyFlags.AF) != 0 ? "A" : "",
            (flags & LazyFlags.ZF) != 0 ? "Z" : "",
            (flags & LazyFlags.SF) != 0 ? "S" : "",
            (flags & LazyFlags.OF) != 0 ? "O" : "");
        return text.Length == 0 ? "-" : text;
    }
}

public sealed class ShiftTests
{
    [Theory]
    [InlineData("mov al, 0x81\nshl al, 1", "", "al=02", "CO")]
    [InlineData("mov al, 0x81\nshl al, 0", "CZ", "al=81", "CZ")]
    [InlineData("mov al, 0xFF\nadd al, 1\nmov cl, 0x20\nshl al, cl", "", "al=0", "CPAZ")] // count 32 masks to 0: the ADD's flags stay
    [InlineData("mov al, 0x81\nmov cl, 8\nshl al, cl", "", "al=0", "CPZO")]
    [InlineData("mov al, 0x81\nshl al, 9", "C", "al=0", "PZ")]
    [InlineData("mov ax, 0x4000\nshl ax, 1", "", "ax=8000", "PSO")]
    [InlineData("mov eax, 0x80000001\nshl eax, 31", "", "eax=80000000", "PSO")]
    [InlineData("mov eax, 0xC0000000\nmov cl, 33\nshl eax, cl", "", "eax=80000000", "CPS")]
    [InlineData("mov byte [0x500], 3\nmov cl, 2\nshl byte [0x500], cl\nmov al, [0x500]", "C", "al=0c", "P")]
    [InlineData("mov dword [0x500], 0x00018000\nshl dword [0x500], 16\nmov eax, [0x500]", "", "eax=80000000", "CPS")]
    [InlineData("mov al, 0x40\ndb 0xD0, 0xF0", "", "al=80", "SO")] // D0 /6: the undocumented SAL alias
    public void ShiftLeft(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov al, 0x81\nshr al, 1", "", "al=40", "CO")]
    [InlineData("mov ax, 0x8005\nshr ax, 3", "", "ax=1000", "CP")]
    [InlineData("mov eax, 0x80000000\nmov cl, 31\nshr eax, cl", "C", "eax=1", "-")]
    [InlineData("mov al, 0x80\nmov cl, 8\nshr al, cl", "", "al=0", "CPZ")]
    [InlineData("mov al, 0x80\nmov cl, 9\nshr al, cl", "C", "al=0", "PZ")]
    [InlineData("mov ah, 0x03\nshr ah, 1", "", "ah=1", "C")]
    [InlineData("mov word [0x500], 0x8001\nmov cl, 16\nshr word [0x500], cl\nmov ax, [0x500]", "", "ax=0", "CPZ")]
    [InlineData("mov eax, 0x12345678\nshr eax, 0", "PS", "eax=12345678", "PS")]
    public void ShiftRight(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov al, 0x81\nsar al, 1", "", "al=c0", "CPS")]
    [InlineData("mov ax, 0x8000\nmov cl, 20\nsar ax, cl", "", "ax=ffff", "CPS")]
    [InlineData("mov eax, 0x7FFFFFF8\nsar eax, 4", "", "eax=7ffffff", "CP")]
    [InlineData("mov eax, 0x80000000\nmov cl, 63\nsar eax, cl", "C", "eax=ffffffff", "PS")] // count 31: bit 30 goes out
    [InlineData("mov word [0x500], 0xFF01\nsar word [0x500], 1\nmov ax, [0x500]", "", "ax=ff80", "CS")]
    [InlineData("mov byte [0x500], 0x7F\nsar byte [0x500], 7\nmov al, [0x500]", "", "al=0", "CPZ")]
    public void ShiftArithmeticRight(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov al, 0x81\nrol al, 1", "PZ", "al=03", "CPZO")] // only CF and OF change
    [InlineData("mov al, 0x80\nmov cl, 8\nrol al, cl", "CZ", "al=80", "ZO")] // a multiple of 8 still sets CF and OF
    [InlineData("mov al, 0x81\nmov cl, 32\nrol al, cl", "SO", "al=81", "SO")] // 5-bit count 0: nothing changes
    [InlineData("mov ax, 0x1234\nror ax, 4", "", "ax=4123", "O")]
    [InlineData("mov eax, 1\nmov cl, 1\nror eax, cl", "", "eax=80000000", "CO")]
    [InlineData("mov word [0x500], 0x8000\nrol word [0x500], 17\nmov ax, [0x500]", "", "ax=1", "CO")]
    [InlineData("mov eax, 3\nrol eax, 31", "", "eax=80000001", "C")]
    [InlineData("mov byte [0x500], 0x1E\nmov cl, 12\nror byte [0x500], cl\nmov al, [0x500]", "AS", "al=e1", "CAS")]
    [InlineData("mov dword [0x500], 0x80000000\nrol dword [0x500], 1\nmov eax, [0x500]", "", "eax=1", "CO")]
    [InlineData("mov bh, 0x01\nror bh, 1", "", "bh=80", "CO")]
    public void Rotate(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov al, 0x80\nrcl al, 1", "C", "al=01", "CO")]
    [InlineData("mov al, 0x55\nmov cl, 9\nrcl al, cl", "CS", "al=55", "CS")] // 9 mod 9 = 0
    [InlineData("mov al, 0x01\nmov cl, 8\nrcl al, cl", "C", "al=80", "CO")] // 8 through 9 bits = 1 the other way
    [InlineData("mov al, 0x03\nrcl al, 17", "", "al=01", "C")] // 17 mod 9 = 8
    [InlineData("mov ax, 0x0001\nrcl ax, 16", "", "ax=0", "C")]
    [InlineData("mov ax, 0x1234\nmov cl, 17\nrcl ax, cl", "O", "ax=1234", "O")] // 17 mod 17 = 0
    [InlineData("mov eax, 0x80000000\nrcl eax, 31", "", "eax=20000000", "O")]
    [InlineData("mov word [0x500], 0x4000\nrcl word [0x500], 1\nmov ax, [0x500]", "", "ax=8000", "O")]
    public void RotateThroughCarryLeft(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov ax, 0x8000\nrcr ax, 16", "C", "ax=1", "CO")] // 16 through 17 bits = 1 the other way
    [InlineData("mov dword [0x500], 1\nrcr dword [0x500], 1\nmov eax, [0x500]", "C", "eax=80000000", "CO")]
    [InlineData("mov al, 0x02\nmov cl, 10\nrcr al, cl", "C", "al=81", "O")] // 10 mod 9 = 1
    [InlineData("mov eax, 0x100\nrcr ah, 1", "", "eax=0", "C")]
    [InlineData("mov al, 0x80\nmov cl, 9\nrcr al, cl", "ZO", "al=80", "ZO")]
    [InlineData("mov ax, 0x0003\nmov cl, 18\nrcr ax, cl", "", "ax=1", "C")] // 18 mod 17 = 1
    [InlineData("mov eax, 0x00000005\nmov cl, 3\nrcr eax, cl", "C", "eax=60000000", "C")]
    public void RotateThroughCarryRight(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov eax, 0x12345678\nmov ebx, 0x9ABCDEF0\nshld eax, ebx, 8", "", "eax=3456789a", "P")]
    [InlineData("mov ax, 0x1234\nmov bx, 0x5678\nshld ax, bx, 20", "", "ax=6781", "CPO")] // > 16: AX:BX:AX
    [InlineData("mov ax, 0x1234\nmov bx, 0xABCD\nshld ax, bx, 16", "", "ax=abcd", "SO")]
    [InlineData("mov eax, 1\nmov ebx, 0xFFFFFFFF\nmov cl, 32\nshld eax, ebx, cl", "ZS", "eax=1", "ZS")]
    [InlineData("mov word [0x500], 0x8000\nmov bx, 0xFFFF\nmov cl, 1\nshld [0x500], bx, cl\nmov ax, [0x500]", "", "ax=1", "CO")]
    [InlineData("mov eax, 0x80000000\nmov edx, 0x80000000\nshld eax, edx, 1", "", "eax=1", "CO")]
    public void ShiftLeftDouble(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov eax, 0x12345678\nmov ebx, 0x9ABCDEF0\nmov cl, 4\nshrd eax, ebx, cl", "", "eax=01234567", "C")]
    [InlineData("mov ax, 0x1234\nmov bx, 0x5678\nmov cl, 20\nshrd ax, bx, cl", "", "ax=4567", "CO")] // > 16: AX:BX:AX
    [InlineData("mov dword [0x500], 0x80000000\nmov ebx, 1\nshrd [0x500], ebx, 31\nmov eax, [0x500]", "", "eax=3", "P")]
    [InlineData("mov ax, 0x0001\nmov bx, 0x0001\nshrd ax, bx, 1", "", "ax=8000", "CPSO")]
    [InlineData("mov ax, 0x00F0\nmov bx, 0\nshrd ax, bx, 0", "CAO", "ax=f0", "CAO")]
    public void ShiftRightDouble(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);
}
