using System.Text.Json;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Qmp;

/// <summary>`dotnet vmm monitor PATH [COMMAND [JSON-ARGS]]` as scripts and people use it.</summary>
[Collection(MonitorCollection.Name)]
public class MonitorClientVerbTests(SpinVmmFixture fixture) : IClassFixture<SpinVmmFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public void OneCommandPrintsItsResultAsJsonAndExitsZero()
    {
        VmmResult result = VmmProcess.Run(["monitor", fixture.Vmm.SocketPath, "query-status"], Timeout);

        Assert.Equal(0, result.ExitCode);
        Assert.Empty(result.Stderr);
        JsonElement status = JsonDocument.Parse(result.Stdout).RootElement;
        Assert.Equal("running", status.GetProperty("status").GetString());
        Assert.Contains("\n  \"status\": \"running\"", result.Stdout); // pretty-printed for people
    }

    [Fact]
    public void ArgumentsAreAJsonObjectAndTheUnixPrefixIsAccepted()
    {
        string file = Path.Combine(fixture.Vmm.Directory, "verb.bin");
        byte[] image = File.ReadAllBytes(fixture.Vmm.GuestImage);

        VmmResult result = VmmProcess.Run(
            ["monitor", $"unix:{fixture.Vmm.SocketPath}", "pmemsave", $"{{\"val\": 31744, \"size\": {image.Length}, \"filename\": \"{file}\"}}"], Timeout);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("{}\n", result.Stdout);
        Assert.Equal(image, File.ReadAllBytes(file));
    }

    [Fact]
    public void HumanMonitorOutputIsPrintedAsPlainText()
    {
        VmmResult result = VmmProcess.Run(["monitor", fixture.Vmm.SocketPath, "human-monitor-command", "{\"command-line\": \"info status\"}"], Timeout);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("VM status: running\n", result.Stdout);
    }

    [Theory]
    [InlineData("pmemsave", "{\"val\": 0}", "vmm: error: GenericError: Parameter 'size' is missing")]
    [InlineData("frobnicate", null, "vmm: error: CommandNotFound: The command frobnicate has not been found")]
    public void AQmpErrorIsOneLineOnStderrAndExitStatusOne(string command, string? arguments, string expected)
    {
        VmmResult result = VmmProcess.Run(arguments is null
            ? ["monitor", fixture.Vmm.SocketPath, command]
            : ["monitor", fixture.Vmm.SocketPath, command, arguments], Timeout);
        Assert.Equal(1, result.ExitCode);
        Assert.Empty(result.StdoutBytes);
        Assert.Equal([expected], result.StderrLines);
    }

    [Fact]
    public void NoMonitorThereIsAConnectionErrorWithStatusTwo()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vmm-nothing-{Guid.NewGuid():N}.sock");
        VmmResult result = VmmProcess.Run(["monitor", path, "query-status"], Timeout);
        Assert.Equal(2, result.ExitCode);
        Assert.Empty(result.StdoutBytes);
        string line = Assert.Single(result.StderrLines);
        Assert.StartsWith($"vmm: error: cannot connect to monitor socket {path}", line);
    }

    [Theory]
    [InlineData("{\"val\": ")]
    [InlineData("[1, 2]")]
    public void BadJsonArgumentsAreAUsageErrorWithStatusTwo(string arguments)
    {
        VmmResult result = VmmProcess.Run(["monitor", fixture.Vmm.SocketPath, "pmemsave", arguments], Timeout);
        Assert.Equal(2, result.ExitCode);
        Assert.Empty(result.StdoutBytes);
        Assert.StartsWith("vmm: error: arguments ", Assert.Single(result.StderrLines));
    }

    [Fact]
    public void InteractiveModeRunsOneCommandPerLineShowsEventsAndLeavesTheVmRunningAtEndOfInput()
    {
        VmmResult result = VmmProcess.Run(
            ["monitor", fixture.Vmm.SocketPath], Timeout,
            stdin: "query-status\nstop\nhuman-monitor-command {\"command-line\": \"info status\"}\nnonsense\ncont\nquery-status {}\n");

        Assert.Equal(0, result.ExitCode);
        string output = result.Stdout;
        Assert.DoesNotContain("(qmp)", output); // no prompt when stdin is not a terminal
        int running = output.IndexOf("\"status\": \"running\"", StringComparison.Ordinal);
        int stopEvent = output.IndexOf("event STOP", StringComparison.Ordinal);
        int paused = output.IndexOf("VM status: paused", StringComparison.Ordinal);
        int resumeEvent = output.IndexOf("event RESUME", StringComparison.Ordinal);
        Assert.True(running >= 0 && stopEvent > running && paused > stopEvent && resumeEvent > paused, output);
        Assert.Equal(2, output.Split("\"status\": \"running\"").Length - 1);
        Assert.Contains("error: CommandNotFound: The command nonsense has not been found", result.Stderr);

        // End of input left the prompt, not the VM.
        using QmpTestClient client = fixture.Vmm.Connect();
        Assert.Equal("running", client.Return("query-status").GetProperty("status").GetString());
    }
}
