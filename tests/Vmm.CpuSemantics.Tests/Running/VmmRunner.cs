using System.Diagnostics;

namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>Runs a test image through the real `dotnet vmm run` entry point with the accelerator a test asks for.</summary>
public static class VmmRunner
{
    /// <summary>Generous: a software CPU may be much slower than QEMU's JIT, and the harness streams results so a hang is still located.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    /// <summary>
    /// No serial byte for this long means stuck: every case sends its result as soon as it ends, and even a slow
    /// interpreter runs one case in far less. Short, so that a CPU that loses its way fails a family in seconds.
    /// </summary>
    public static readonly TimeSpan StallTimeout = TimeSpan.FromSeconds(10);

    public static GuestRun Run(string imagePath, string serialPath, string accelerator)
    {
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = Path.GetTempPath() };
        foreach (var argument in new[] { RepositoryPaths.VmmDll, "run", imagePath, "--serial", $"file:{serialPath}", "--memory", "32M" })
        {
            info.ArgumentList.Add(argument);
        }

        // vmm reads every VMM_* variable as configuration: only the accelerator choice may reach it.
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("VMM_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(key);
        }

        info.Environment[Accelerator.Variable] = accelerator;
        var outcome = ChildProcess.Run(info, Timeout, () => ChildProcess.FileLength(serialPath), StallTimeout);
        var serial = File.Exists(serialPath) ? File.ReadAllBytes(serialPath) : [];
        return new GuestRun(
            $"vmm ({Accelerator.Variable}={accelerator})",
            ChildProcess.Describe(info, [new(Accelerator.Variable, accelerator)]),
            outcome.ExitCode,
            outcome.KilledBecause,
            serial,
            outcome.Stderr,
            outcome.Elapsed);
    }
}
