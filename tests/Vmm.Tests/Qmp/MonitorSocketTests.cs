using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Qmp;

/// <summary>The socket file itself: who may open it, what happens when the path is taken, and that it goes away.</summary>
[Collection(MonitorCollection.Name)]
public class MonitorSocketTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public void TheSocketIsOwnerOnlyAndNoTemporaryDirectoryIsLeftBehind()
    {
        using MonitoredVmm vmm = MonitoredVmm.Start("spin");

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(vmm.SocketPath));
        Assert.Equal(["qmp.sock"], Directory.GetFileSystemEntries(vmm.Directory).Select(Path.GetFileName));
    }

    [Fact]
    public void ASocketALiveVmmServesIsRefusedBeforeTheGuestStarts()
    {
        using MonitoredVmm first = MonitoredVmm.Start("spin");

        VmmResult second = VmmProcess.Run(["run", Repo.Guest("hello"), "--monitor", $"unix:{first.SocketPath}"], Timeout);
        Assert.Equal(2, second.ExitCode);
        Assert.Equal([$"vmm: error: monitor socket {first.SocketPath} is in use by another process"], second.StderrLines);
        Assert.Empty(second.StdoutBytes); // the hello guest never ran

        using QmpTestClient client = first.Connect();
        Assert.Equal("running", client.Return("query-status").GetProperty("status").GetString());
    }

    [Fact]
    public void AStaleSocketLeftByAKilledVmmIsReplaced()
    {
        using MonitoredVmm killed = MonitoredVmm.Start("spin");
        Signal("-KILL", killed.Process.ProcessId);
        killed.Process.WaitForExit(Timeout);
        Assert.True(File.Exists(killed.SocketPath), "SIGKILL gave the VMM no chance to clean up, yet the socket is gone");

        using VmmProcess vmm = VmmProcess.Start("run", Repo.Guest("spin"), "--monitor", $"unix:{killed.SocketPath}");
        vmm.WaitForStdout(s => s.Contains("spin"), Timeout);
        using QmpTestClient client = QmpTestClient.Connect(killed.SocketPath);
        Assert.Equal("running", client.Return("query-status").GetProperty("status").GetString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(killed.SocketPath));
    }

    [Fact]
    public void APathThatIsNotASocketIsRefusedAndLeftAlone()
    {
        string directory = Directory.CreateTempSubdirectory("vmm-qmp-").FullName;
        string path = Path.Combine(directory, "notes.txt");
        try
        {
            File.WriteAllText(path, "precious");
            VmmResult result = VmmProcess.Run(["run", Repo.Guest("hello"), "--monitor", $"unix:{path}"], Timeout);
            Assert.Equal(2, result.ExitCode);
            Assert.Equal([$"vmm: error: monitor socket path {path} exists and is not a socket; refusing to replace it"], result.StderrLines);
            Assert.Empty(result.StdoutBytes);
            Assert.Equal("precious", File.ReadAllText(path));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void TheSocketIsRemovedWhenTheGuestPowersOff()
    {
        string directory = Directory.CreateTempSubdirectory("vmm-qmp-").FullName;
        string path = Path.Combine(directory, "qmp.sock");
        try
        {
            VmmResult result = VmmProcess.Run(["run", Repo.Guest("hello"), "--monitor", $"unix:{path}"], Timeout);
            Assert.Equal(0, result.ExitCode);
            Assert.Equal("Hello from vmm!\r\n", result.Stdout);
            Assert.Empty(Directory.GetFileSystemEntries(directory));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void TheSocketIsRemovedWhenTheGuestCrashes()
    {
        string directory = Directory.CreateTempSubdirectory("vmm-qmp-").FullName;
        string path = Path.Combine(directory, "qmp.sock");
        try
        {
            VmmResult result = VmmProcess.Run(["run", Repo.Guest("triple-fault"), "--monitor", $"unix:{path}"], Timeout);
            Assert.NotEqual(0, result.ExitCode);
            Assert.Empty(Directory.GetFileSystemEntries(directory));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void TheSocketIsRemovedWhenTheVmmIsInterrupted()
    {
        using MonitoredVmm vmm = MonitoredVmm.Start("spin");
        vmm.Process.WaitForStdout(s => s.Contains("spin"), Timeout); // the guest runs: the signal handlers are in place
        Signal("-TERM", vmm.Process.ProcessId);

        Assert.Equal(128 + 15, vmm.Process.WaitForExit(Timeout).ExitCode);
        Assert.False(File.Exists(vmm.SocketPath));
    }

    private static void Signal(string signal, int processId)
    {
        using var kill = System.Diagnostics.Process.Start("kill", [signal, processId.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}
