using System.Diagnostics;
using System.Text.Json;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Qmp;

/// <summary>A QMP client nobody here wrote: socat pipes a scripted session into the socket and prints the answers.</summary>
[Collection(MonitorCollection.Name)]
public class SocatSessionTests
{
    [Fact]
    public void ScriptedSocatSessionNegotiatesAndQueriesStatus()
    {
        Assert.True(File.Exists("/usr/bin/socat") || File.Exists("/usr/local/bin/socat"), "socat is not installed: run 'make setup' (it installs socat)");
        using MonitoredVmm vmm = MonitoredVmm.Start("spin");

        var info = new ProcessStartInfo("socat", ["-t", "10", "-", $"UNIX-CONNECT:{vmm.SocketPath}"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using Process socat = Process.Start(info)!;
        Task<string> output = socat.StandardOutput.ReadToEndAsync();
        Task<string> errors = socat.StandardError.ReadToEndAsync();
        socat.StandardInput.Write("{ \"execute\": \"qmp_capabilities\" }\n{ \"execute\": \"query-status\", \"id\": \"socat\" }\n");
        socat.StandardInput.Close();
        Assert.True(socat.WaitForExit(30_000), "socat did not finish");
        Assert.Equal(0, socat.ExitCode);

        string[] lines = output.Result.Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 3, $"expected greeting and two answers, got: {output.Result} {errors.Result}");
        Assert.StartsWith("{\"QMP\": {\"version\": {\"qemu\": ", lines[0]);
        Assert.Equal("{\"return\": {}}", lines[1]);
        Assert.Equal("{\"return\": {\"running\": true, \"singlestep\": false, \"status\": \"running\"}, \"id\": \"socat\"}", lines[2]);
        Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(lines[0]).RootElement.ValueKind);
        Assert.False(vmm.Process.HasExited);
    }
}
