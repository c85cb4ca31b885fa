using System.Diagnostics;

namespace Vmm.Bench;

/// <summary>
/// QEMU's TCG, the figure the software CPU is measured against, runs our own guest images: each becomes a raw boot
/// disk (padded to a sector with the 55AA signature) that SeaBIOS enters at 0000:7C00 as vmm does
/// (<see cref="QemuInstance"/> runs it).
/// </summary>
internal static class QemuTcg
{
    public const string Binary = "qemu-system-x86_64";

    /// <summary>Why QEMU cannot run here, or null when it can.</summary>
    public static string? Unavailable()
    {
        try
        {
            using Process? probe = Process.Start(new ProcessStartInfo(Binary, "--version") { RedirectStandardOutput = true, RedirectStandardError = true });
            probe?.WaitForExit();
            return probe is { ExitCode: 0 } ? null : $"{Binary} --version failed";
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return $"{Binary} not found ({e.Message}); `make setup` installs it";
        }
    }

    /// <summary>Writes the image as a one-sector boot disk next to the other temporary files and returns its path.</summary>
    public static string BootDisk(string image)
    {
        byte[] code = File.ReadAllBytes(image);
        if (code.Length > 510)
        {
            throw new InvalidOperationException($"{image}: {code.Length} bytes do not fit a boot sector");
        }

        byte[] sector = new byte[512];
        code.CopyTo(sector, 0);
        sector[510] = 0x55;
        sector[511] = 0xAA;
        string disk = Path.Combine(Path.GetTempPath(), $"vmm-bench-{Path.GetFileNameWithoutExtension(image)}-{Environment.ProcessId}.img");
        File.WriteAllBytes(disk, sector);
        return disk;
    }
}
