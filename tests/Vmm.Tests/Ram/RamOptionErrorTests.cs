using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Ram;

/// <summary>
/// Bad RAM options through the real CLI: one clear `vmm: error:` line each, never a stack trace. Option mistakes are
/// status 2 (nothing ran); a host that cannot provide the memory (too few huge pages, no hugetlbfs) is status 4.
/// </summary>
[Collection(RamCollection.Name)]
public class RamOptionErrorTests
{
    [Theory]
    [InlineData("name= is required", "--ram-block", "gpa=0x2000000,size=4M")]
    [InlineData("name= is required", "--ram-block", "name=,gpa=0x2000000,size=4M")]
    [InlineData("gpa 0x800000 overlaps pc.ram [0, 0x1000000)", "--ram-block", "name=low,gpa=0x800000,size=4M")]
    [InlineData("overlaps pc.ram", "--memory", "64M", "--ram-block", "name=low,gpa=0x2000000,size=4M")]
    [InlineData("must be multiples of 2M for the hugetlbfs backend", "--ram-block", "name=h,gpa=0x2000000,size=3M,backend=hugetlbfs")]
    [InlineData("must be multiples of 2M for the hugetlbfs backend", "--ram-block", "name=h,gpa=0x2100000,size=4M,backend=hugetlbfs")]
    [InlineData("must be multiples of 2M for the hugetlbfs backend", "--ram-backend", "hugetlbfs", "--ram-block", "name=h,gpa=0x2000000,size=4M,max=5M")]
    [InlineData("unknown key 'foo' (known: name, gpa, size, max, backend)", "--ram-block", "name=x,gpa=0x2000000,size=4M,foo=1")]
    [InlineData("max= must be a size at least as large as size=", "--ram-block", "name=x,gpa=0x2000000,size=4M,max=2M")]
    [InlineData("backend= must be anonymous, shared or hugetlbfs", "--ram-block", "name=x,gpa=0x2000000,size=4M,backend=bogus")]
    [InlineData("a block named 'pc.ram' already exists", "--ram-block", "name=pc.ram,gpa=0x2000000,size=4M")]
    [InlineData("overlaps block 'a'", "--ram-block", "name=a,gpa=0x2000000,size=4M,max=8M", "--ram-block", "name=b,gpa=0x2400000,size=4M")]
    [InlineData("ram-backend: 'bogus' is not one of anonymous, shared, hugetlbfs", "--ram-backend", "bogus")]
    [InlineData("mem-path: directory '/nonexistent' does not exist", "--mem-path", "/nonexistent")]
    [InlineData("memory: 15M is not a multiple of the 2 MiB huge page size", "--ram-backend", "hugetlbfs", "--memory", "15M")]
    public void BadRamOptionsAreOneLineAndStatusTwo(string expected, params string[] options)
    {
        VmmResult result = VmmProcess.Run(["run", Repo.Guest("hello"), .. options], TimeSpan.FromSeconds(60));

        AssertOneErrorLine(result, expected);
        Assert.Equal(2, result.ExitCode);
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Fact]
    public void TooFewHugePagesForPcRamNamesTheNeedAndTheKnob()
    {
        const ulong pages = 1536; // 3 GiB in 2 MiB pages: more than `make setup` reserves (600)
        Skip.If(HugePages.AvailablePages >= pages, $"{HugePages.AvailablePages} huge pages are free here; this test needs fewer than {pages}");

        VmmResult result = VmmProcess.Run(["run", Repo.Guest("hello"), "--ram-backend", "hugetlbfs", "--memory", "3G"], TimeSpan.FromSeconds(60));

        string line = AssertOneErrorLine(result, $"RAM block 'pc.ram' needs {pages} huge pages of 2 MiB (3072 MiB)");
        Assert.Contains(HugePages.PoolSizeKnob, line);
        Assert.Contains("nr_hugepages", line);
        Assert.Matches(@"Reserve them as root with: echo \d+ > ", line);
        Assert.Equal(4, result.ExitCode);
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Fact]
    public void TooFewHugePagesForAnExtraBlockNamesThatBlock()
    {

        // 512 GiB of huge pages: no test host has those free.
        VmmResult result = VmmProcess.Run(
            ["run", Repo.Guest("hello"), "--ram-block", "name=big,gpa=0x100000000,size=512G,backend=hugetlbfs"], TimeSpan.FromSeconds(60));

        string line = AssertOneErrorLine(result, "RAM block 'big' needs 262144 huge pages of 2 MiB (524288 MiB)");
        Assert.Contains("nr_hugepages", line);
        Assert.Equal(4, result.ExitCode);
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Fact]
    public void MemPathThatIsNotHugetlbfsIsAHostErrorWithTheMountCommand()
    {
        string directory = Directory.CreateTempSubdirectory("vmm-not-hugetlbfs-").FullName;
        try
        {
            VmmResult result = VmmProcess.Run(["run", Repo.Guest("hello"), "--mem-path", directory], TimeSpan.FromSeconds(60));

            string line = AssertOneErrorLine(result, $"mem-path {directory} is not on a hugetlbfs mount");
            Assert.Contains($"mount -t hugetlbfs none {directory}", line);
            Assert.Equal(4, result.ExitCode);
            Assert.Empty(Directory.GetFileSystemEntries(directory));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// --mem-path makes hugetlbfs the default backend, but a block may still name another one: that must either work
    /// (the mem-path only applies to hugetlbfs blocks) or be refused in one line — never an unhandled exception.
    /// </summary>
    [Theory]
    [InlineData("shared")]
    [InlineData("anonymous")]
    public void MemPathWithANonHugetlbfsExtraBlockRunsOrIsRefusedCleanly(string blockBackend)
    {
        using HugetlbfsMount mount = HugetlbfsMount.Acquire();
        VmmResult result = VmmProcess.Run(
            ["run", Repo.Guest("hello"), "--mem-path", mount.Path, "--ram-block", $"name=x,gpa=0x2000000,size=4M,backend={blockBackend}"],
            TimeSpan.FromSeconds(60));

        Assert.DoesNotContain("Unhandled exception", result.Stderr);
        Assert.DoesNotMatch(@"\n\s+at ", result.Stderr);
        if (result.ExitCode == 0)
        {
            Assert.Equal("Hello from vmm!\r\n", result.Stdout);
        }
        else
        {
            Assert.Single(result.StderrLines);
            Assert.StartsWith("vmm: error: ", result.StderrLines[0]);
            Assert.Equal(2, result.ExitCode);
        }
    }

    private static string AssertOneErrorLine(VmmResult result, string expected)
    {
        Assert.DoesNotContain("Unhandled exception", result.Stderr);
        Assert.DoesNotMatch(@"\n\s+at ", result.Stderr);
        string line = Assert.Single(result.StderrLines);
        Assert.StartsWith("vmm: error: ", line);
        Assert.Contains(expected, line);
        return line;
    }
}
