namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>Mnemonics of the x86 exception vectors, for reports.</summary>
public static class ExceptionNames
{
    private static readonly string[] Mnemonics =
    [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "vector 9", "#TS", "#NP", "#SS", "#GP", "#PF",
        "vector 15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    ];

    /// <summary>"-" for none, else e.g. "#DE (0)".</summary>
    public static string Describe(int? vector) => vector switch
    {
        null => "-",
        { } v when v < Mnemonics.Length => $"{Mnemonics[v]} ({v})",
        { } v => $"vector {v}",
    };
}
