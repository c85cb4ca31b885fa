namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>EFLAGS bits by name, and how a report spells a flags value.</summary>
public static class EFlags
{
    public const uint CF = 1u << 0;
    public const uint Reserved1 = 1u << 1;
    public const uint PF = 1u << 2;
    public const uint AF = 1u << 4;
    public const uint ZF = 1u << 6;
    public const uint SF = 1u << 7;
    public const uint TF = 1u << 8;
    public const uint IF = 1u << 9;
    public const uint DF = 1u << 10;
    public const uint OF = 1u << 11;
    public const uint Iopl = 3u << 12;
    public const uint NT = 1u << 14;
    public const uint RF = 1u << 16;
    public const uint VM = 1u << 17;
    public const uint AC = 1u << 18;
    public const uint VIF = 1u << 19;
    public const uint VIP = 1u << 20;
    public const uint ID = 1u << 21;

    /// <summary>The six arithmetic (status) flags.</summary>
    public const uint Arithmetic = CF | PF | AF | ZF | SF | OF;

    /// <summary>What a case's initial flags are chosen from: the arithmetic flags and DF (IF and TF stay 0 so nothing interrupts a case).</summary>
    public const uint CaseControlled = Arithmetic | DF;

    private static readonly (uint Bit, string Name)[] Named =
    [
        (CF, "CF"), (PF, "PF"), (AF, "AF"), (ZF, "ZF"), (SF, "SF"), (TF, "TF"), (IF, "IF"), (DF, "DF"), (OF, "OF"),
        (1u << 12, "IOPL0"), (1u << 13, "IOPL1"), (NT, "NT"), (RF, "RF"), (VM, "VM"), (AC, "AC"), (VIF, "VIF"),
        (VIP, "VIP"), (ID, "ID"),
    ];

    /// <summary>A flags value as the names of its set flags; the always-set bit 1 is left out.</summary>
    public static string Describe(uint value) => Names(value & ~Reserved1);

    /// <summary>The names of the set bits in <paramref name="bits"/>, e.g. "CF ZF"; unnamed bits as "bitN"; "-" when none.</summary>
    public static string Names(uint bits)
    {
        var names = new List<string>();
        for (var bit = 0; bit < 32; bit++)
        {
            var mask = 1u << bit;
            if ((bits & mask) == 0)
            {
                continue;
            }

            var known = Array.Find(Named, n => n.Bit == mask);
            names.Add(known.Name ?? $"bit{bit}");
        }

        return names.Count == 0 ? "-" : string.Join(' ', names);
    }
}
