using System.Diagnostics;

namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>
/// The witness: runs a test image on qemu-system-x86_64 with TCG (QEMU's software CPU) from a raw IDE disk, SeaBIOS
/// booting it like a boot sector, COM1 to a file and isa-debug-exit at 0xF4 as under vmm.
/// </summary>
public static class QemuRunner
{
    public const string Executable = "qemu-system-x86_64";

    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

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
            Assert.Fail($"{Executable} is not installed, and these tests compare vmm with it: run 'make setup' (it installs QEMU)");
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

        var (exitCode, stderr, elapsed) = ChildProcess.Run(info, Timeout);
        var serial = File.Exists(serialPath) ? File.ReadAllBytes(serialPath) : [];
        return new GuestRun("QEMU TCG", ChildProcess.Describe(info), exitCode, serial, stderr, elapsed);
    }
}
