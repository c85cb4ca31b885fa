using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Vmm.Linux;

namespace Vmm.Ram.Tests;

/// <summary>The huge page pool, the up-front shortage check, and hugetlbfs files under a mem-path.</summary>
public class HugePagesTests
{
    [Fact]
    public void PoolCountersAreConsistent()
    {
        Assert.True(HugePages.IsSupported);
        Assert.Equal(2ul * 1024 * 1024, HugePages.PageSize);
        ulong total = HugePages.TotalPages;
        ulong free = HugePages.FreePages;
        Assert.True(total >= free, $"{free} free of {total}");
        Assert.True(free >= HugePages.AvailablePages);
        Assert.Equal("/proc/sys/vm/nr_hugepages", HugePages.PoolSizeKnob);
        Assert.Equal(File.ReadAllText("/proc/sys/vm/nr_hugepages").Trim(), total.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void AHugetlbfsBlockReservesItsWholeMaxLengthAtCreation()
    {
        ulong before = HugePages.AvailablePages;
        RamBlockSpec spec = Shapes.Spec(RamBackend.Hugetlbfs, resizable: true);

        using (RamBlock block = RamBlock.Create(spec))
        {
            Assert.Equal(before - (block.MaxLength / HugePages.PageSize), HugePages.AvailablePages);
        }

        Assert.Equal(before, HugePages.AvailablePages);
    }

    [Fact]
    public void AskingForMoreHugePagesThanAreFreeSaysHowToReserveThem()
    {
        const ulong pages = 100_000;

        var e = Assert.Throws<RamBackendException>(() =>
            RamBlock.Create(new RamBlockSpec("big.ram", 0, pages * HugePages.PageSize, Backend: RamBackend.Hugetlbfs)));

        // The numbers are read from the message itself, so another process using huge pages meanwhile cannot
        // make this flaky; they must still add up and match the pool.
        Match match = Regex.Match(
            e.Message,
            @"RAM block 'big\.ram' needs (\d+) huge pages of 2 MiB \(\d+ MiB\) but only (\d+) are free \((?:(\d+) free, \d+ of them promised to other mappings; )?pool size (\d+)\)\. Reserve them as root with: echo (\d+) > /proc/sys/vm/nr_hugepages");
        Assert.True(match.Success, e.Message);
        ulong needed = ulong.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        ulong available = ulong.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
        ulong free = match.Groups[3].Success ? ulong.Parse(match.Groups[3].Value, CultureInfo.InvariantCulture) : available;
        ulong pool = ulong.Parse(match.Groups[4].Value, CultureInfo.InvariantCulture);
        ulong advised = ulong.Parse(match.Groups[5].Value, CultureInfo.InvariantCulture);
        Assert.Equal(pages, needed);
        Assert.True(available <= free && free <= pool, e.Message);
        Assert.Equal(HugePages.TotalPages, pool);
        Assert.Equal(pool + needed - available, advised);
    }

    [Fact]
    public void AResizableBlockIsCheckedAgainstItsMaxLength()
    {
        ulong available = HugePages.AvailablePages;
        ulong max = (available + 1) * HugePages.PageSize;

        var e = Assert.Throws<RamBackendException>(() =>
            RamBlock.Create(new RamBlockSpec("grow.ram", 0, HugePages.PageSize, max, RamBackend.Hugetlbfs)));

        Assert.Contains($"needs {available + 1} huge pages", e.Message);
    }

    [Fact]
    public void AMemPathBlockLivesInAnUnlinkedFileOnHugetlbfs()
    {
        using var mount = HugetlbfsMount.FindOrCreate();
        RamBlockSpec spec = Shapes.Spec(RamBackend.Hugetlbfs, resizable: true) with { MemPath = mount.Path };

        using (RamBlock block = RamBlock.Create(spec))
        {
            Assert.Equal(Statfs.HUGETLBFS_MAGIC, Statfs.Fstatfs(block.Fd!).Type);
            Assert.Equal(HugePages.PageSize, block.PageSize);

            // Unlinked at once: nothing is left in the directory even while the block is alive.
            Assert.DoesNotContain(Directory.EnumerateFiles(mount.Path), f => System.IO.Path.GetFileName(f).StartsWith($"vmm-{Environment.ProcessId}-", StringComparison.Ordinal));

            Shapes.FillMarkers(block);
            Assert.Equal(Shapes.Marker(1), BitConverter.ToUInt64(block.GetAliasSpan(block.PageSize, 8)));
            Assert.Equal(block.UsedLength, Backing.FileBytes(block));
            block.Discard(0, block.PageSize);
            Assert.Equal(block.UsedLength - block.PageSize, Backing.FileBytes(block));
            Assert.True(Shapes.IsZero(block, 0, block.PageSize));
        }
    }

    [Fact]
    public void AMemPathOffHugetlbfsIsRefusedWithTheMountCommand()
    {
        string directory = Directory.CreateTempSubdirectory("vmm-not-huge-").FullName;
        try
        {
            var e = Assert.Throws<RamBackendException>(() =>
                RamBlock.Create(new RamBlockSpec("huge", 0, HugePages.PageSize, Backend: RamBackend.Hugetlbfs, MemPath: directory)));

            Assert.Contains("not on a hugetlbfs mount", e.Message);
            Assert.Contains($"mount -t hugetlbfs none {directory}", e.Message);
            Assert.Empty(Directory.EnumerateFileSystemEntries(directory));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void AMissingMemPathIsABackendError()
    {
        var e = Assert.Throws<RamBackendException>(() =>
            RamBlock.Create(new RamBlockSpec("huge", 0, HugePages.PageSize, Backend: RamBackend.Hugetlbfs, MemPath: "/nonexistent/vmm-hugepages")));

        Assert.Contains("/nonexistent/vmm-hugepages", e.Message);
    }

    /// <summary>A 2 MiB hugetlbfs mount: /dev/hugepages (or any existing one) if mounted, else a temporary one of our own.</summary>
    private sealed class HugetlbfsMount : IDisposable
    {
        private readonly bool ours;

        private HugetlbfsMount(string path, bool ours)
        {
            Path = path;
            this.ours = ours;
        }

        public string Path { get; }

        public static HugetlbfsMount FindOrCreate()
        {
            foreach (string line in File.ReadLines("/proc/mounts"))
            {
                string[] fields = line.Split(' ');
                bool twoMegabytePages = !fields[3].Contains("pagesize=", StringComparison.Ordinal) || fields[3].Contains("pagesize=2M", StringComparison.Ordinal);
                if (fields[2] == "hugetlbfs" && twoMegabytePages)
                {
                    return new HugetlbfsMount(fields[1], ours: false);
                }
            }

            string directory = Directory.CreateTempSubdirectory("vmm-hugetlbfs-").FullName;
            Run("mount", $"-t hugetlbfs -o pagesize=2M none {directory}");
            return new HugetlbfsMount(directory, ours: true);
        }

        public void Dispose()
        {
            if (ours)
            {
                Run("umount", Path);
                Directory.Delete(Path);
            }
        }

        private static void Run(string file, string arguments)
        {
            using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true })!;
            string error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"{file} {arguments} failed ({process.ExitCode}): {error}");
        }
    }
}
