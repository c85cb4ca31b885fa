using IcedCode = Iced.Intel.Code;

namespace Vmm.CpuSemantics.Tests.Cases;

/// <summary>
/// Iced instruction codes by name ("Adc_rm16_imm8"), so a family can walk its mnemonics and widths instead of listing
/// every code by hand. A misspelt name fails the family at once.
/// </summary>
public static class Codes
{
    public static IcedCode Get(string name) =>
        Enum.TryParse<IcedCode>(name, out var code) ? code : throw new ArgumentException($"Iced has no code {name}", nameof(name));
}
