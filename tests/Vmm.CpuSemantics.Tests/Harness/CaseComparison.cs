namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>Field-by-field comparison of two machines' results for the same case.</summary>
public static class CaseComparison
{
    /// <summary>
    /// The EFLAGS bits compared: the six arithmetic flags (defined or not: QEMU's value is the rule) and DF. The
    /// others are the harness's business (IF, TF stay 0) or tested through a register (PUSHF puts them in one).
    /// </summary>
    public const uint ComparedFlags = EFlags.Arithmetic | EFlags.DF;

    /// <summary>
    /// The fields in which <paramref name="actual"/> differs from <paramref name="expected"/>: register names, "EFLAGS",
    /// "exception", "branch", "data".
    /// </summary>
    public static IReadOnlyList<string> Differences(CaseOutcome expected, CaseOutcome actual)
    {
        var fields = new List<string>();
        for (var r = Gpr.Eax; r <= Gpr.Edi; r++)
        {
            if (expected[r] != actual[r])
            {
                fields.Add(r.ToString().ToUpperInvariant());
            }
        }

        if (((expected.Eflags ^ actual.Eflags) & ComparedFlags) != 0)
        {
            fields.Add("EFLAGS");
        }

        if (expected.Exception != actual.Exception)
        {
            fields.Add("exception");
        }

        if (expected.BranchTaken != actual.BranchTaken)
        {
            fields.Add("branch");
        }

        if (!expected.Data.AsSpan().SequenceEqual(actual.Data))
        {
            fields.Add("data");
        }

        return fields;
    }
}
