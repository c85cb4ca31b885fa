using System.Diagnostics;

namespace Vmm.Tests.Ram;

/// <summary>
/// A hugetlbfs mount with 2 MiB pages for --mem-path: /dev/hugepages when it is one, otherwise a fresh mount under
/// /tmp (root only, as CI runs) that is unmounted and removed again on dispose.
/// </summary>
internal sealed class HugetlbfsMount : IDisposable
{
    private readonly bool ownMount;

    private HugetlbfsMount(string path, bool ownMount)
    {
        Path = path;
        this.ownMount = ownMount;
    }

    public string Path { get; }

    public static HugetlbfsMount Acquire()
    {
        if (IsTwoMiBHugetlbfsMount("/dev/hugepages"))
        {
            return new HugetlbfsMount("/dev/hugepages", ownMount: false);
        }

        string directory = Directory.CreateTempSubdirectory("vmm-hugetlbfs-").FullName;
        (int status, string output) = Run("mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", directory);
        if (status != 0)
        {
            Directory.Delete(directory);
            Assert.Fail($"cannot mount hugetlbfs at {directory} (status {status}): {output}. The RAM tests run as root, like CI.");
        }

        Assert.True(IsTwoMiBHugetlbfsMount(directory), $"{directory} does not show up as a 2 MiB hugetlbfs mount in /proc/mounts");
        return new HugetlbfsMount(directory, ownMount: true);
    }

    private static bool IsTwoMiBHugetlbfsMount(string path) =>
        File.ReadLines("/proc/mounts")
            .Select(line => line.Split(' '))
            .Any(f => f.Length >= 4 && f[1] == path && f[2] == "hugetlbfs" && (!f[3].Contains("pagesize=") || f[3].Contains("pagesize=2M")));

    private static (int Status, string Output) Run(string program, params string[] arguments)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(info)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(30_000))
        {
            process.Kill();
            return (-1, $"{program} did not finish in 30 s");
        }

        return (process.ExitCode, (stdout.Result + stderr.Result).Trim());
    }

    public void Dispose()
    {
        if (!ownMount)
        {
            return;
        }

        // A VMM child that has just exited may still be tearing its mapping down: retry briefly on EBUSY.
        for (int attempt = 0; attempt < 50; attempt++)
        {
            if (Run("umount", Path).Status == 0)
            {
                Directory.Delete(Path);
                return;
            }

            Thread.Sleep(100);
        }

        Console.Error.WriteLine($"warning: could not unmount the test hugetlbfs at {Path}");
    }
}
