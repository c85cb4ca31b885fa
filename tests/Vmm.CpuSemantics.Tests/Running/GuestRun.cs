namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>How one machine ran one test image.</summary>
/// <param name="Machine">Who ran it, for reports ("QEMU TCG", "vmm (VMM_ACCEL=emulator)").</param>
/// <param name="CommandLine">The command, so a report can be reproduced by hand.</param>
/// <param name="ExitCode">The exit status, or null when it was killed.</param>
/// <param name="KilledBecause">Why it was killed (timeout or no progress), or null.</param>
/// <param name="Serial">Everything the guest wrote to COM1.</param>
/// <param name="Stderr">The machine's own diagnostics.</param>
/// <param name="Elapsed">Wall time from start to exit.</param>
public sealed record GuestRun(string Machine, string CommandLine, int? ExitCode, string? KilledBecause, byte[] Serial, string Stderr, TimeSpan Elapsed)
{
    public string Status => ExitCode is { } code ? $"exit status {code}" : KilledBecause ?? "killed";

    /// <summary>The last lines of stderr, for a report.</summary>
    public string StderrTail
    {
        get
        {
            var text = Stderr.TrimEnd();
            return text.Length <= 1500 ? text : "…" + text[^1500..];
        }
    }
}
