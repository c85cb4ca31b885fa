using Vmm.Tests.Infrastructure;

namespace Vmm.Tests;

/// <summary>The command line as a user meets it: help, version, bad options, serial targets, logs off stdout.</summary>
public class CliTests
{
    [Fact]
    public void HelpListsTheRunVerb()
    {
        VmmResult result = VmmProcess.Run("--help");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("run", result.Stdout);
    }

    [Fact]
    public void RunHelpListsEveryOption()
    {
        VmmResult result = VmmProcess.Run("run", "--help");
        Assert.Equal(0, result.ExitCode);
        foreach (string option in new[] { "--memory", "--load-address", "--serial", "--log-level", "--log-file", "--trace", "--config" })
        {
            Assert.Contains(option, result.Stdout);
        }
    }

    [Fact]
    public void VersionPrintsTheVersion()
    {
        VmmResult result = VmmProcess.Run("--version");
        Assert.Equal(0, result.ExitCode);
        Assert.StartsWith("0.1.0", result.Stdout.Trim());
    }

    [Fact]
    public void UnknownOptionIsAUsageError()
    {
        VmmResult result = VmmProcess.Run("run", "x.bin", "--frobnicate");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--frobnicate", result.Stderr);
    }

    [Theory]
    [InlineData("--memory", "lots", "memory: 'lots' is not a size")]
    [InlineData("--memory", "4G", "memory: 4G is out of range")]
    [InlineData("--serial", "pipe", "serial: 'pipe'")]
    [InlineData("--log-level", "chatty", "log-level: 'chatty'")]
    [InlineData("--load-address", "0x100000", "load-address")]
    public void BadOptionValueIsAClearErrorBeforeAnythingRuns(string option, string value, string expected)
    {
        VmmResult result = VmmProcess.Run("run", Repo.Guest("hello"), option, value);
        Assert.Equal(2, result.ExitCode);
        Assert.Empty(result.StdoutBytes);
        Assert.Contains($"vmm: error: {expected}", result.Stderr);
    }

    [Fact]
    public void SerialFileTargetReceivesTheGuestOutputAndStdoutStaysEmpty()
    {
        string file = Path.Combine(Path.GetTempPath(), $"vmm-serial-{Guid.NewGuid():N}.txt");
        try
        {
            VmmResult result = VmmProcess.Run("run", Repo.Guest("hello"), "--serial", $"file:{file}");
            Assert.Equal(0, result.ExitCode);
            Assert.Empty(result.StdoutBytes);
            Assert.Equal("Hello from vmm!\r\n", File.ReadAllText(file));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void SerialNoneDiscardsOutput()
    {
        VmmResult result = VmmProcess.Run("run", Repo.Guest("hello"), "--serial", "none");
        Assert.Equal(0, result.ExitCode);
        Assert.Empty(result.StdoutBytes);
    }

    [Fact]
    public void DebugLogsGoToStderrAndTheLogFileNeverToStdout()
    {
        string logFile = Path.Combine(Path.GetTempPath(), $"vmm-log-{Guid.NewGuid():N}.log");
        try
        {
            VmmResult result = VmmProcess.Run("run", Repo.Guest("hello"), "--log-level", "debug", "--log-file", logFile);
            Assert.Equal("Hello from vmm!\r\n", result.Stdout);
            Assert.Contains("DBG", result.Stderr);
            Assert.Matches(@"loaded \d+ bytes from .*hello.bin", File.ReadAllText(logFile));
        }
        finally
        {
            File.Delete(logFile);
        }
    }

    [Fact]
    public void TracePrintsEachInstructionToStderr()
    {
        VmmResult result = VmmProcess.Run("run", Repo.Guest("hello"), "--trace");

        Assert.Equal("Hello from vmm!\r\n", result.Stdout);
        Assert.Equal(0, result.ExitCode);
        string[] trace = result.StderrLines.Where(l => l.StartsWith("trace: ", StringComparison.Ordinal)).ToArray();
        Assert.StartsWith("trace: 0000:7c00", trace[0]);
        Assert.True(trace.Length > 100, $"only {trace.Length} traced instructions");
        Assert.Contains(trace, l => l.Contains("out dx,al") || l.Contains("out "));
        Assert.EndsWith("hlt", trace[^1]);
    }

    [Fact]
    public void ConfigurationLayersJsonThenEnvironmentThenCommandLine()
    {
        string dir = Directory.CreateTempSubdirectory("vmm-config-").FullName;
        try
        {
            // vmm.json asks for no serial output; VMM_SERIAL overrides it to a file; the command line wins over both.
            File.WriteAllText(Path.Combine(dir, "vmm.json"), """{ "serial": "none", "memory": "8M" }""");
            VmmResult fromJson = VmmProcess.Run(["run", Repo.Guest("hello")], TimeSpan.FromSeconds(60), workingDirectory: dir);
            Assert.Empty(fromJson.StdoutBytes);

            string file = Path.Combine(dir, "serial.txt");
            var env = new Dictionary<string, string> { ["VMM_SERIAL"] = $"file:{file}" };
            VmmResult fromEnv = VmmProcess.Run(["run", Repo.Guest("hello")], TimeSpan.FromSeconds(60), env, workingDirectory: dir);
            Assert.Empty(fromEnv.StdoutBytes);
            Assert.Equal("Hello from vmm!\r\n", File.ReadAllText(file));

            VmmResult fromCli = VmmProcess.Run(["run", Repo.Guest("hello"), "--serial", "stdio"], TimeSpan.FromSeconds(60), env, workingDirectory: dir);
            Assert.Equal("Hello from vmm!\r\n", fromCli.Stdout);

            var badEnv = new Dictionary<string, string> { ["VMM_MEMORY"] = "9G" };
            VmmResult bad = VmmProcess.Run(["run", Repo.Guest("hello")], TimeSpan.FromSeconds(60), badEnv, workingDirectory: dir);
            Assert.Equal(2, bad.ExitCode);
            Assert.Contains("memory: 9G is out of range", bad.Stderr);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void MalformedConfigFileIsAClearError()
    {
        string dir = Directory.CreateTempSubdirectory("vmm-config-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "vmm.json"), "{ memory: ");
            VmmResult result = VmmProcess.Run(["run", Repo.Guest("hello")], TimeSpan.FromSeconds(60), workingDirectory: dir);
            Assert.Equal(2, result.ExitCode);
            Assert.Contains("vmm: error: config:", result.Stderr);
            Assert.DoesNotContain("   at ", result.Stderr);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
