using System.Diagnostics;

namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>Runs a test image through the real `dotnet vmm run` entry point with the accelerator a test asks for.</summary>
public static class VmmRunner
{
    /// <summary>Generous: a software CPU may be much slower than QEMU's JIT, and the harness streams results so a hang is still located.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    public static GuestRun Run(string imagePath, string serialPath, string accelerator)
    {
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = Path.GetTempPath() };
        foreach (var argument in new[] { RepositoryPaths.VmmDll, "run", imagePath, "--serial", $"file:{serialPath}", "--memory", "32M" })
        {
            info.ArgumentList.Add(argument);
        }

        // vmm reads every VMM_* variable as configuration: none may leak in from the test's environment.
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("VMM_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(key);
        }

        info.Environment["VMM_ACCEL"] = accelerator;
        var (exitCode, stderr, elapsed) = ChildProcess.Run(info, Timeout);
        var serial = File.Exists(serialPath) ? File.ReadAllBytes(serialPath) : [];
        return new GuestRun(
            $"vmm (VMM_ACCEL={accelerator})",
            ChildProcess.Describe(info, [new("VMM_ACCEL", accelerator)]),
            exitCode,
            serial,
            stderr,
            elapsed);
    }
}
