using System.Diagnostics;

namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>
/// The witness: runs a test image on qemu-system-x86_64 with TCG (QEMU's software CPU) from a raw IDE disk, SeaBIOS
/// booting it like a boot sector, COM1 to a file and isa-debug-exit at 0xF4 as under vmm.
/// </summary>
public static class QemuRunner
{
    public const string Executable = "qemu-system-x86_64";

    /// <summary>The Debian package that has <see cref="Executable"/>.</summary>
    public const string Package = "qemu-system-x86";

    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>A QEMU run streams a result every few microseconds; a few seconds of silence is a hang.</summary>
    public static readonly TimeSpan StallTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The full path of qemu-system-x86_64; fails the test (never skips it) when it is not installed.</summary>
    public static string Locate()
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Append("/usr/bin")
            .Select(dir => Path.Combine(dir, Executable))
            .FirstOrDefault(File.Exists);
        if (path is null)
        {
            // A failure, not a skip: without the witness nothing about the CPU is checked, and a skip reads as a pass.
            Assert.Fail($"{Executable} not found, and these tests compare vmm with it: install {Package} (make setup)");
        }

        return path;
    }

    public static GuestRun Run(string imagePath, string serialPath)
    {
        var info = new ProcessStartInfo(Locate());
        foreach (var argument in new[]
                 {
                     "-accel", "tcg", "-nodefaults", "-display", "none", "-no-reboot", "-m", "32",
                     "-serial", $"file:{serialPath}",
                     "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                     "-drive", $"format=raw,file={imagePath},if=ide",
                 })
        {
            info.ArgumentList.Add(argument);
        }

        var outcome = ChildProcess.Run(info, Timeout, () => ChildProcess.FileLength(serialPath), StallTimeout);
        var serial = File.Exists(serialPath) ? File.ReadAllBytes(serialPath) : [];
        return new GuestRun("QEMU TCG", ChildProcess.Describe(info), outcome.ExitCode, outcome.KilledBecause, serial, outcome.Stderr, outcome.Elapsed);
    }
}
