namespace Vmm.Emulator.Tests;

public sealed class BcdTests
{
    [Theory]
    [InlineData("mov al, 0x15\nadd al, 0x27\ndaa", "", "al=42", "PA")]
    [InlineData("mov al, 0x99\nadd al, 0x01\ndaa", "", "al=0", "CPAZ")] // 99 + 1 = 100: both digits adjust
    [InlineData("mov al, 0x09\nadd al, 0x09\ndaa", "", "al=18", "PA")] // AF from the ADD, low digit looks valid
    [InlineData("mov al, 0x00\ndaa", "CAO", "al=66", "CPA")] // CF and AF in, OF cleared
    [InlineData("mov al, 0x9A\ndaa", "", "al=0", "CPAZ")]
    [InlineData("mov al, 0x99\nadd al, 0x99\ndaa", "", "al=98", "CAS")] // 0x132: CF from the ADD
    public void DecimalAdjustAfterAddition(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov al, 0x42\nsub al, 0x15\ndas", "", "al=27", "PA")]
    [InlineData("mov al, 0x03\ndas", "CA", "al=9d", "CAS")] // AL < 6 with AF borrows; CF in adjusts the high digit
    [InlineData("mov al, 0x9A\ndas", "", "al=34", "CA")]
    [InlineData("mov al, 0x10\nsub al, 0x01\ndas", "", "al=09", "PA")] // 10 - 1
    [InlineData("mov al, 0x00\nsub al, 0x01\ndas", "", "al=99", "CPAS")] // 0 - 1 = 99 borrow 1
    [InlineData("mov al, 0x66\ndas", "O", "al=66", "P")]
    public void DecimalAdjustAfterSubtraction(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov ax, 0x0009\nadd al, 0x08\naaa", "", "ax=107", "CPA")] // PF stays from the ADD
    [InlineData("mov ax, 0x00FA\naaa", "", "ax=200", "CA")] // AL + 6 carries into AH too
    [InlineData("mov ax, 0x1235\naaa", "CZ", "ax=1205", "Z")]
    [InlineData("mov ax, 0x1235\naaa", "A", "ax=130b", "CA")] // AF alone asks for the adjustment
    [InlineData("mov ax, 0xFF0A\naaa", "SO", "ax=0", "CASO")] // AH wraps; the other flags stay
    public void AsciiAdjustAfterAddition(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov ax, 0x0205\nsub al, 0x08\naas", "", "ax=107", "CAS")]
    [InlineData("mov ax, 0x0503\naas", "A", "ax=30d", "CA")] // AL < 6: AH takes the borrow too
    [InlineData("mov ax, 0x0009\naas", "CZ", "ax=9", "Z")]
    [InlineData("mov ax, 0x0009\naas", "A", "ax=ff03", "CA")]
    [InlineData("mov ax, 0x000B\naas", "P", "ax=ff05", "CPA")]
    public void AsciiAdjustAfterSubtraction(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov ax, 0xAA4F\naam", "CO", "ax=709", "P")] // 79; flags as a logical operation on AL
    [InlineData("mov al, 0xFE\naam 16", "", "ax=f0e", "-")]
    [InlineData("mov al, 20\naam 10", "", "ax=200", "PZ")]
    [InlineData("mov al, 0x85\naam 0xFF", "", "ax=85", "S")]
    public void AsciiAdjustAfterMultiply(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);

    [Theory]
    [InlineData("mov ax, 0x0709\naad", "CO", "ax=4f", "-")]
    [InlineData("mov ax, 0xFFFF\naad 16", "", "ax=ef", "S")] // 0x10EF cut to a byte
    [InlineData("mov ax, 0x0100\naad 0", "", "ax=0", "PZ")]
    [InlineData("mov eax, 0x12340203\naad 7", "", "eax=12340011", "P")]
    public void AsciiAdjustBeforeDivision(string code, string flags, string registers, string expectedFlags) =>
        FlagSnippet.Check(code, flags, registers, expectedFlags);
}
