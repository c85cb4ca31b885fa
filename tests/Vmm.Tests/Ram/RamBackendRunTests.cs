using System.Text.RegularExpressions;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Ram;

/// <summary>
/// memtest and dirty through the real `dotnet vmm run` on every RAM backend (DESIGN §4, issue "Must show"), with the
/// child's /proc/PID/smaps as the witness that the backend asked for is the one that backs pc.ram.
/// </summary>
[Collection(RamCollection.Name)]
public class RamBackendRunTests
{
    [Theory]
    [InlineData("anonymous")]
    [InlineData("shared")]
    [InlineData("hugetlbfs")]
    public void MemtestPassesOver256MiBOnEveryBackend(string backend)
    {

        // ~85 s of emulated rep stosd/scasd on this nested host; 400 s leaves room for a loaded machine.
        VmmResult result = VmmProcess.Run(["run", Repo.Guest("memtest"), "--memory", "256M", "--ram-backend", backend], TimeSpan.FromSeconds(400));

        Assert.Contains("memtest: testing 255 MiB above 1 MiB", result.Stdout);
        Assert.Contains("memtest: PASS", result.Stdout);
        Assert.DoesNotContain("FAIL", result.Stdout);
        Assert.Equal((0x10 << 1) | 1, result.ExitCode);
        Assert.Equal(string.Empty, result.Stderr);
    }

    [Theory]
    [InlineData("anonymous", null)]
    [InlineData("shared", 4)]
    [InlineData("hugetlbfs", 2048)]
    public void DirtyRunsOnEveryBackendAndTheBackendIsTheOneAskedFor(string backend, int? kernelPageKiB)
    {
        using VmmProcess vmm = VmmProcess.Start("run", Repo.Guest("dirty"), "--memory", "32M", "--ram-backend", backend);
        string output = vmm.WaitForStdout(text => text.Count(c => c == 'B') >= 5, TimeSpan.FromSeconds(60));

        Assert.Matches("^AB+$", output);
        Assert.False(vmm.HasExited);

        // Shared and hugetlbfs blocks are memfds named after the block (primary and alias mapping); anonymous is not.
        IReadOnlyList<int> pageSizes = KernelPageSizesOf(vmm.ProcessId, "memfd:vmm-ram:pc.ram");
        if (kernelPageKiB is null)
        {
            Assert.Empty(pageSizes);
        }
        else
        {
            Assert.Equal(2, pageSizes.Count);
            Assert.All(pageSizes, size => Assert.Equal(kernelPageKiB, size));
        }
    }

    [Fact]
    public void DirtyRunsWithItsRamInAFileOnAHugetlbfsMount()
    {
        using HugetlbfsMount mount = HugetlbfsMount.Acquire();
        using (VmmProcess vmm = VmmProcess.Start("run", Repo.Guest("dirty"), "--memory", "32M", "--mem-path", mount.Path))
        {
            string output = vmm.WaitForStdout(text => text.Count(c => c == 'B') >= 5, TimeSpan.FromSeconds(60));
            Assert.Matches("^AB+$", output);

            // pc.ram is an (already unlinked) file in the mount, mapped twice with 2 MiB pages.
            IReadOnlyList<int> pageSizes = KernelPageSizesOf(vmm.ProcessId, $"{mount.Path}/vmm-{vmm.ProcessId}-pc.ram-");
            Assert.Equal(2, pageSizes.Count);
            Assert.All(pageSizes, size => Assert.Equal(2048, size));
            Assert.Empty(Directory.GetFiles(mount.Path, $"vmm-{vmm.ProcessId}-*"));
        }

        // Nothing is left behind in the mount once the VMM is gone.
        Assert.Empty(Directory.GetFileSystemEntries(mount.Path, "vmm-*"));
    }

    private static readonly Regex MappingHeader = new("^[0-9a-f]+-[0-9a-f]+ ", RegexOptions.Compiled);

    /// <summary>KernelPageSize (KiB) of every mapping in /proc/PID/smaps whose path contains <paramref name="pathPart"/>.</summary>
    private static IReadOnlyList<int> KernelPageSizesOf(int pid, string pathPart)
    {
        var sizes = new List<int>();
        bool inMatch = false;
        foreach (string line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            // Mapping headers start with "start-end perms"; attribute lines with "Name:".
            if (MappingHeader.IsMatch(line))
            {
                inMatch = line.Contains(pathPart, StringComparison.Ordinal);
            }
            else if (inMatch && line.StartsWith("KernelPageSize:", StringComparison.Ordinal))
            {
                sizes.Add(int.Parse(line["KernelPageSize:".Length..].Replace("kB", string.Empty).Trim()));
            }
        }

        return sizes;
    }
}
