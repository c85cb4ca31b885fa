using System.Text.Json;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Qmp;

/// <summary>The read-only commands on a running spin guest: queries, memory dumps to files, and the human monitor.</summary>
[Collection(MonitorCollection.Name)]
public class QmpQueryAndMemoryTests(SpinVmmFixture fixture) : IClassFixture<SpinVmmFixture>
{
    private const ulong LoadAddress = 0x7C00;

    [Fact]
    public void QueryStatusOfARunningGuest()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        JsonElement status = client.Return("query-status");
        Assert.True(status.GetProperty("running").GetBoolean());
        Assert.False(status.GetProperty("singlestep").GetBoolean());
        Assert.Equal("running", status.GetProperty("status").GetString());
    }

    [Fact]
    public void QueryVersionHasQemusShape()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        JsonElement version = client.Return("query-version");
        Assert.Equal("vmm", version.GetProperty("package").GetString());
        JsonElement qemu = version.GetProperty("qemu");
        Assert.Equal((0, 1, 0), (qemu.GetProperty("major").GetInt32(), qemu.GetProperty("minor").GetInt32(), qemu.GetProperty("micro").GetInt32()));
    }

    [Fact]
    public void QueryCommandsListsEveryCommand()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        string[] names = [.. client.Return("query-commands").EnumerateArray().Select(c => c.GetProperty("name").GetString()!)];
        string[] expected =
        [
            "qmp_capabilities", "query-status", "stop", "cont", "quit", "system_reset", "query-version", "query-commands",
            "query-cpus-fast", "query-kvm", "pmemsave", "memsave", "human-monitor-command", "query-ram-blocks", "ram-resize", "ram-discard", "ram-remap",
        ];
        Assert.Empty(expected.Except(names));
        Assert.Equal(names.Length, names.Distinct().Count());
    }

    [Fact]
    public void QueryKvmSaysWhichAcceleratorRunsTheGuest()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        JsonElement kvm = client.Return("query-kvm");
        bool onKvm = TestAccelerator.Kind == Accelerator.AcceleratorKind.Kvm;
        bool kvmWorks = Machine.AcceleratorSelection.ProbeKvm() is null;
        Assert.Equal(onKvm, kvm.GetProperty("enabled").GetBoolean());
        Assert.Equal(kvmWorks, kvm.GetProperty("present").GetBoolean());

        string expected = onKvm ? "enabled" : kvmWorks ? "disabled" : "not compiled";
        Assert.Equal($"kvm support: {expected}\r\n", Hmp(client, "info kvm"));
    }

    [Fact]
    public void QueryCpusFastDescribesTheVcpuThread()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        JsonElement cpu = Assert.Single(client.Return("query-cpus-fast").EnumerateArray());
        Assert.Equal(0, cpu.GetProperty("cpu-index").GetInt32());
        Assert.Equal("/machine/unattached/device[0]", cpu.GetProperty("qom-path").GetString());
        Assert.Equal("x86_64", cpu.GetProperty("target").GetString());

        // The thread id is a real thread of the VMM process.
        int threadId = cpu.GetProperty("thread-id").GetInt32();
        Assert.True(Directory.Exists($"/proc/{fixture.Vmm.Process.ProcessId}/task/{threadId}"), $"thread {threadId} is not in the VMM");
    }

    [Fact]
    public void QueryRamBlocksShowsPcRam()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        JsonElement block = Assert.Single(client.Return("query-ram-blocks").EnumerateArray(), b => b.GetProperty("name").GetString() == "pc.ram");
        Assert.Equal(0ul, block.GetProperty("base").GetUInt64());
        Assert.Equal(16ul << 20, block.GetProperty("used").GetUInt64());
        Assert.Equal(16ul << 20, block.GetProperty("max").GetUInt64());
        Assert.Equal(4096ul, block.GetProperty("page-size").GetUInt64());
        Assert.Equal("anonymous", block.GetProperty("backend").GetString());
        Assert.False(block.GetProperty("resizable").GetBoolean());
    }

    [Fact]
    public void PmemsaveOfTheLoadAreaIsTheGuestImage()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        byte[] image = File.ReadAllBytes(fixture.Vmm.GuestImage);

        byte[] dumped = fixture.Vmm.Pmemsave(client, LoadAddress, (ulong)image.Length);
        Assert.Equal(image, dumped);
    }

    [Fact]
    public void PmemsaveCreatesAnOwnerOnlyFileAndAcceptsSizeZero()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        string file = Path.Combine(fixture.Vmm.Directory, "empty.bin");
        client.Return("pmemsave", new { val = 0, size = 0, filename = file });
        Assert.Equal(0, new FileInfo(file).Length);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
    }

    [Theory]
    [InlineData(16ul << 20, 1ul, "guest physical address 0x1000000 is not RAM")]
    [InlineData((16ul << 20) - 4, 8ul, "guest physical address 0x1000000 is not RAM")]
    [InlineData(0xFFFFFFFFFFFFFFF0ul, 0x20ul, "wraps around")]
    [InlineData(1ul, ulong.MaxValue, "wraps around")]
    [InlineData(0x7C00ul, ulong.MaxValue - 0x7BFFul, "wraps around")]
    public void PmemsaveOutsideRamIsAnErrorAndWritesNothing(ulong address, ulong size, string expected)
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        string file = Path.Combine(fixture.Vmm.Directory, $"outside-{Guid.NewGuid():N}.bin");
        string error = client.Error("pmemsave", new { val = address, size, filename = file });
        Assert.Contains(expected, error);
        Assert.StartsWith($"Invalid addr 0x{address:x16}/size {size} specified", error);
        Assert.False(File.Exists(file));
    }

    /// <summary>
    /// A new file, as docs/monitor.md says: an existing file is neither truncated nor overwritten, and a symbolic link
    /// is not followed (dangling or not), so a monitor client cannot make the VMM write anywhere but a new path.
    /// </summary>
    [Fact]
    public void PmemsaveRefusesAnExistingFileOrASymlink()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        string existing = Path.Combine(fixture.Vmm.Directory, $"existing-{Guid.NewGuid():N}.bin");
        File.WriteAllText(existing, "keep me");
        Assert.StartsWith($"Could not open '{existing}'", client.Error("pmemsave", new { val = 0, size = 16, filename = existing }));
        Assert.Equal("keep me", File.ReadAllText(existing));

        string link = Path.Combine(fixture.Vmm.Directory, $"link-{Guid.NewGuid():N}.bin");
        File.CreateSymbolicLink(link, existing);
        Assert.StartsWith($"Could not open '{link}'", client.Error("pmemsave", new { val = 0, size = 16, filename = link }));
        Assert.Equal("keep me", File.ReadAllText(existing));

        string target = Path.Combine(fixture.Vmm.Directory, $"target-{Guid.NewGuid():N}.bin");
        string dangling = Path.Combine(fixture.Vmm.Directory, $"dangling-{Guid.NewGuid():N}.bin");
        File.CreateSymbolicLink(dangling, target);
        Assert.StartsWith($"Could not open '{dangling}'", client.Error("memsave", new { val = 0, size = 16, filename = dangling }));
        Assert.False(File.Exists(target));
    }

    [Fact]
    public void PmemsaveIntoAMissingDirectoryIsAnError()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        string file = Path.Combine(fixture.Vmm.Directory, "no-such-dir", "x.bin");
        Assert.StartsWith($"Could not open '{file}'", client.Error("pmemsave", new { val = 0, size = 16, filename = file }));
    }

    [Fact]
    public void MemsaveReadsVirtualAddressesOfAnUnpagedGuest()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        byte[] image = File.ReadAllBytes(fixture.Vmm.GuestImage);
        string file = Path.Combine(fixture.Vmm.Directory, "memsave.bin");

        client.Return("memsave", new Dictionary<string, object> { ["val"] = LoadAddress, ["size"] = image.Length, ["filename"] = file, ["cpu-index"] = 0 });
        Assert.Equal(image, File.ReadAllBytes(file));

        string defaultCpu = Path.Combine(fixture.Vmm.Directory, "memsave-cpu0.bin");
        client.Return("memsave", new { val = LoadAddress, size = image.Length, filename = defaultCpu });
        Assert.Equal(image, File.ReadAllBytes(defaultCpu));

        Assert.Equal("Parameter 'cpu-index' expects a CPU number",
            client.Error("memsave", new Dictionary<string, object> { ["val"] = 0, ["size"] = 1, ["filename"] = file, ["cpu-index"] = 3 }));
        Assert.Contains("is not RAM", client.Error("memsave", new { val = 0x2000000, size = 1, filename = file }));
    }

    [Fact]
    public void HumanMonitorDumpsMemoryInQemusLayout()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        byte[] image = File.ReadAllBytes(fixture.Vmm.GuestImage);

        string bytes = Hmp(client, "xp /10xb 0x7c00");
        string expectedBytes =
            "0000000000007c00: " + string.Join(' ', image[..8].Select(b => $"0x{b:x2}")) + "\r\n" +
            "0000000000007c08: " + string.Join(' ', image[8..10].Select(b => $"0x{b:x2}")) + "\r\n";
        Assert.Equal(expectedBytes, bytes);

        // x takes a virtual address; this guest is unpaged, so it is the same memory. Default size: w.
        string words = Hmp(client, "x/5x 0x7c00");
        uint[] dwords = [.. Enumerable.Range(0, 5).Select(i => BitConverter.ToUInt32(image, i * 4))];
        Assert.Equal(
            "0000000000007c00: " + string.Join(' ', dwords[..4].Select(w => $"0x{w:x8}")) + "\r\n" +
            "0000000000007c10: " + $"0x{dwords[4]:x8}" + "\r\n",
            words);

        Assert.Equal($"0000000000007c00: 0x{BitConverter.ToUInt64(image, 0):x16}\r\n", Hmp(client, "xp /1g 31744"));
        Assert.Equal($"0000000000007c00: {image[0],3} {image[1],3}\r\n", Hmp(client, "xp /2ub 0x7c00"));
        Assert.Equal($"0000000000007c00: {(short)BitConverter.ToUInt16(image, 0),5}\r\n", Hmp(client, "xp /dh 0x7c00"));
    }

    [Fact]
    public void HumanMonitorPrintsCharactersAndUnreadableMemory()
    {
        using QmpTestClient client = fixture.Vmm.Connect();

        // The spin guest prints "spin\r\n" from a string inside its image.
        byte[] image = File.ReadAllBytes(fixture.Vmm.GuestImage);
        int at = IndexOf(image, "spin\r\n"u8.ToArray());
        Assert.True(at >= 0, "the spin image has no banner string");
        Assert.Equal($"{0x7C00 + at:x16}: 's' 'p' 'i' 'n' '\\r' '\\n'\r\n", Hmp(client, $"xp /6cb 0x{0x7C00 + at:x}"));

        Assert.Equal("0000000001000000: Cannot access memory\r\n", Hmp(client, "xp /4x 0x1000000"));
        // A line that runs off the end of RAM is not readable as a whole, as in QEMU.
        Assert.Equal("0000000000fffff8: Cannot access memory\r\n", Hmp(client, "xp /6x 0xfffff8"));
    }

    [Fact]
    public void HumanMonitorInfoCommands()
    {
        using QmpTestClient client = fixture.Vmm.Connect();

        Assert.Equal("VM status: running\r\n", Hmp(client, "info status"));

        string registers = Hmp(client, "info registers");
        foreach (string register in new[] { "EAX=", "EIP=", "EFLAGS=", "CS =", "SS =", "CR0=", "GDT=" })
        {
            Assert.Contains(register, registers);
        }

        Assert.Contains("CS =0000", registers);
        Assert.All(registers.Split("\r\n", StringSplitOptions.RemoveEmptyEntries), line => Assert.DoesNotContain('\n', line));
        Assert.EndsWith("\r\n", registers);

        Assert.Matches(@"^\* CPU #0: thread_id=\d+\r\n$", Hmp(client, "info cpus"));
        Assert.Contains("info registers", Hmp(client, "help"));
    }

    [Theory]
    [InlineData("foo", "unknown command: 'foo'\r\n")]
    [InlineData("info nonsense", "unknown command: 'info nonsense'\r\n")]
    [InlineData("x /4z 0x7c00", "invalid char in format: 'z'\r\n")]
    [InlineData("xp /4x", "xp: missing address\r\n")]
    [InlineData("xp /4x banana", "xp: invalid address 'banana'\r\n")]
    [InlineData("xp /100000xg 0", "dump too large: 800000 bytes (vmm dumps at most 65536 bytes at a time)\r\n")]
    [InlineData("", "")]
    public void HumanMonitorProblemsAreTextLikeQemus(string commandLine, string expected)
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        Assert.Equal(expected, Hmp(client, commandLine));
    }

    [Fact]
    public void HumanMonitorRejectsAnUnknownCpu()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        Assert.Equal("Parameter 'cpu-index' expects a CPU number",
            client.Error("human-monitor-command", new Dictionary<string, object> { ["command-line"] = "info registers", ["cpu-index"] = 1 }));
    }

    private static string Hmp(QmpTestClient client, string commandLine) =>
        client.Return("human-monitor-command", new Dictionary<string, object> { ["command-line"] = commandLine }).GetString()!;

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
        {
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle))
            {
                return i;
            }
        }

        return -1;
    }
}
