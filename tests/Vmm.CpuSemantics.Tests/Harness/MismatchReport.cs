using System.Text;

namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// Formats mismatches for a test failure: per case the code (hex and disassembly), then a table with the initial
/// state, QEMU's and vmm's final state, and a marker on every field where vmm differs from QEMU.
/// </summary>
public static class MismatchReport
{
    /// <summary>How many mismatches a failure message shows in full; the rest are only counted (by form).</summary>
    public const int ShownLimit = 30;

    public static string Format(IReadOnlyList<CaseMismatch> mismatches, int totalCases, string vmmMachine)
    {
        var text = new StringBuilder();
        text.AppendLine($"{mismatches.Count} of {totalCases} cases differ between QEMU TCG (expected) and {vmmMachine} (actual)."
            + (mismatches.Count > ShownLimit ? $" The first {ShownLimit} are shown." : ""));
        text.AppendLine("Mismatches by form: " + string.Join(", ", mismatches
            .GroupBy(m => m.Case.Form)
            .Select(g => $"{g.Key} ×{g.Count()}")));
        text.AppendLine("Differing fields: " + string.Join(", ", mismatches
            .SelectMany(m => m.Fields)
            .GroupBy(f => f)
            .Select(g => $"{g.Key} ×{g.Count()}")));
        var undefinedOnly = mismatches.Count(OnlyUndefinedFlags);
        if (undefinedOnly > 0)
        {
            text.AppendLine($"{undefinedOnly} of them differ only in flags the SDM leaves undefined there (QEMU's value is still the rule for vmm's CPU).");
        }
        foreach (var mismatch in mismatches.Take(ShownLimit))
        {
            text.AppendLine();
            AppendCase(text, mismatch);
        }

        return text.ToString();
    }

    /// <summary>Whether a mismatch is in EFLAGS alone, and only in flags undefined for the case's code.</summary>
    public static bool OnlyUndefinedFlags(CaseMismatch mismatch) =>
        mismatch.Fields.Count == 1 && mismatch.Fields[0] == "EFLAGS"
        && ((mismatch.Qemu.Eflags ^ mismatch.Vmm.Eflags) & CaseComparison.ComparedFlags & ~mismatch.Case.UndefinedFlags) == 0;

    public static void AppendCase(StringBuilder text, CaseMismatch mismatch)
    {
        var initial = mismatch.Case.Initial;
        var qemu = mismatch.Qemu;
        var vmm = mismatch.Vmm;
        var differing = new HashSet<string>(mismatch.Fields, StringComparer.Ordinal);
        text.AppendLine($"── {mismatch.Where}: {mismatch.Case.Form} — differs in {string.Join(", ", mismatch.Fields)}");
        text.AppendLine($"   code  {Code16.Hex(mismatch.Case.Code),-24} {Code16.Disassemble(mismatch.Case.Code)}");
        text.AppendLine($"   segments DS={initial.Ds:X4} ES={initial.Es:X4} SS={initial.Ss:X4}; data area at linear {MemoryMap.DataLinear:X5} (= {MemoryMap.DataSegment:X4}:0000)");
        text.AppendLine($"   {"",-10} {"initial",-10} {"QEMU",-10} {"vmm",-10}");
        for (var r = Gpr.Eax; r <= Gpr.Edi; r++)
        {
            var name = r.ToString().ToUpperInvariant();
            text.AppendLine($"   {name,-10} {initial[r]:X8}   {qemu[r]:X8}   {vmm[r]:X8}{Marker(differing.Contains(name))}");
        }

        text.AppendLine($"   {"EFLAGS",-10} {initial.Eflags:X8}   {qemu.Eflags:X8}   {vmm.Eflags:X8}{Marker(differing.Contains("EFLAGS"))}"
            + (differing.Contains("EFLAGS") ? $" differ: {FlagDifference(mismatch)}" : ""));
        text.AppendLine($"   {"  set",-10} [{EFlags.Describe(initial.Eflags)}]  QEMU [{EFlags.Describe(qemu.Eflags)}]  vmm [{EFlags.Describe(vmm.Eflags)}]");
        text.AppendLine($"   {"exception",-10} {"-",-10} {ExceptionNames.Describe(qemu.Exception),-10} {ExceptionNames.Describe(vmm.Exception),-10}{Marker(differing.Contains("exception"))}");
        if (mismatch.Case.Kind == StubKind.Branch)
        {
            text.AppendLine($"   {"branch",-10} {"-",-10} {Taken(qemu.BranchTaken),-10} {Taken(vmm.BranchTaken),-10}{Marker(differing.Contains("branch"))}");
        }

        AppendData(text, initial, qemu.Data, vmm.Data);
    }

    /// <summary>The compared flags that differ, and whether the SDM leaves them all undefined for this code.</summary>
    private static string FlagDifference(CaseMismatch mismatch)
    {
        var differing = (mismatch.Qemu.Eflags ^ mismatch.Vmm.Eflags) & CaseComparison.ComparedFlags;
        var text = EFlags.Names(differing);
        return (differing & ~mismatch.Case.UndefinedFlags) == 0
            ? text + " (undefined in the SDM for this code: QEMU's value is the rule; hardware may differ)"
            : text;
    }

    private static string Marker(bool differs) => differs ? "   <-- differs" : "";

    private static string Taken(bool taken) => taken ? "taken" : "not taken";

    /// <summary>
    /// The data area in rows of 16 bytes; only rows that the case changed (on either machine) or where the machines
    /// disagree are shown, with ^^ under every byte where vmm differs from QEMU.
    /// </summary>
    private static void AppendData(StringBuilder text, CaseState initial, byte[] qemu, byte[] vmm)
    {
        var before = new byte[qemu.Length];
        for (var i = 0; i < before.Length; i++)
        {
            before[i] = i < initial.Data.Length ? initial.Data[i] : TestImageBuilder.DataFill(i);
        }

        var shownAny = false;
        for (var row = 0; row < qemu.Length; row += 16)
        {
            var length = Math.Min(16, qemu.Length - row);
            var a = before.AsSpan(row, length);
            var q = qemu.AsSpan(row, length);
            var v = vmm.AsSpan(row, length);
            if (a.SequenceEqual(q) && q.SequenceEqual(v))
            {
                continue;
            }

            if (!shownAny)
            {
                text.AppendLine("   data area (rows that changed or differ):");
                shownAny = true;
            }

            text.AppendLine($"   +{row:X2} initial {Code16.Hex(a)}");
            text.AppendLine($"   +{row:X2} QEMU    {Code16.Hex(q)}");
            text.AppendLine($"   +{row:X2} vmm     {Code16.Hex(v)}");
            if (!q.SequenceEqual(v))
            {
                var marks = new StringBuilder();
                for (var i = 0; i < length; i++)
                {
                    marks.Append(q[i] == v[i] ? "   " : "^^ ");
                }

                text.AppendLine($"               {marks.ToString().TrimEnd()}");
            }
        }

        if (!shownAny)
        {
            text.AppendLine("   data area: unchanged on both");
        }
    }
}
