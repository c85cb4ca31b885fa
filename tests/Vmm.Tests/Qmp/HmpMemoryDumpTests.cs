using Vmm.Qmp.Hmp;

namespace Vmm.Tests.Qmp;

/// <summary>QEMU's x/xp layout, format letters and defaults, on a fake memory.</summary>
public class HmpMemoryDumpTests
{
    private static readonly byte[] Memory = [.. Enumerable.Range(0, 64).Select(i => (byte)(i * 7 + 0x80))];

    [Theory]
    [InlineData("", 1, 'x', 4)]
    [InlineData("10xb", 10, 'x', 1)]
    [InlineData("3dh", 3, 'd', 2)]
    [InlineData("2g", 2, 'x', 8)]
    [InlineData("c", 1, 'c', 4)]
    [InlineData("4uw", 4, 'u', 4)]
    public void FormatsParseLikeQemus(string text, int count, char format, int size)
    {
        Assert.Equal(new HmpDumpFormat(count, format, size), HmpDumpFormat.Parse(text));
    }

    [Theory]
    [InlineData("bx10", "invalid char in format: '1'")]
    [InlineData("4z", "invalid char in format: 'z'")]
    [InlineData("4i", "format 'i' (disassembly) is not supported by vmm")]
    public void BadFormatsSayWhatIsWrong(string text, string message)
    {
        Assert.Equal(message, Assert.Throws<HmpSyntaxException>(() => HmpDumpFormat.Parse(text)).Message);
    }

    [Fact]
    public void HexBytesEightPerLine()
    {
        Assert.Equal(
            "0000000000000010: 0xf0 0xf7 0xfe 0x05 0x0c 0x13 0x1a 0x21\r\n0000000000000018: 0x28 0x2f\r\n",
            HmpMemoryDump.Format(0x10, new HmpDumpFormat(10, 'x', 1), Read));
    }

    [Fact]
    public void WordsSixteenBytesPerLineLittleEndian()
    {
        Assert.Equal(
            "0000000000000000: 0x958e8780 0xb1aaa39c 0xcdc6bfb8 0xe9e2dbd4\r\n0000000000000010: 0x05fef7f0\r\n",
            HmpMemoryDump.Format(0, new HmpDumpFormat(5, 'x', 4), Read));
    }

    [Fact]
    public void DecimalIsRightAlignedAndSignedForD()
    {
        Assert.Equal("0000000000000000: -128 -121\r\n", HmpMemoryDump.Format(0, new HmpDumpFormat(2, 'd', 1), Read));
        Assert.Equal("0000000000000000: 128 135\r\n", HmpMemoryDump.Format(0, new HmpDumpFormat(2, 'u', 1), Read));
        Assert.Equal("0000000000000000: 34688\r\n", HmpMemoryDump.Format(0, new HmpDumpFormat(1, 'u', 2), Read));
    }

    [Fact]
    public void CharactersAreQuotedWithCEscapes()
    {
        byte[] text = "a'\\\n\r\u0001~"u8.ToArray();
        string dump = HmpMemoryDump.Format(0, new HmpDumpFormat(7, 'c', 1), (address, destination) =>
        {
            text.AsSpan((int)address, destination.Length).CopyTo(destination);
            return true;
        });
        Assert.Equal("0000000000000000: 'a' '\\'' '\\\\' '\\n' '\\r' '\\x01' '~'\r\n", dump);
    }

    [Fact]
    public void UnreadableMemoryEndsTheDump()
    {
        Assert.Equal(
            "0000000000000030: 0xd0 0xd7 0xde 0xe5 0xec 0xf3 0xfa 0x01\r\n0000000000000038: 0x08 0x0f 0x16 0x1d 0x24 0x2b 0x32 0x39\r\n0000000000000040: Cannot access memory\r\n",
            HmpMemoryDump.Format(0x30, new HmpDumpFormat(24, 'x', 1), Read));
    }

    [Fact]
    public void HugeDumpsAreRefused()
    {
        Assert.Throws<HmpSyntaxException>(() => HmpMemoryDump.Format(0, new HmpDumpFormat(100_000, 'x', 8), Read));
    }

    private static bool Read(ulong address, Span<byte> destination)
    {
        if (address + (ulong)destination.Length > (ulong)Memory.Length)
        {
            return false;
        }

        Memory.AsSpan((int)address, destination.Length).CopyTo(destination);
        return true;
    }
}
