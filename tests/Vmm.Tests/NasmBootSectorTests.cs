using System.Diagnostics;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests;

/// <summary>Boot sectors assembled by NASM, a tool nobody here wrote, run unmodified.</summary>
public class NasmBootSectorTests
{
    [Theory]
    [InlineData("lsr-hello", "NASM hello\r\n", 67)]
    [InlineData("unreal", "unreal ok\r\n", 0)]
    public void NasmBootSectorRunsUnmodified(string name, string expectedOutput, int expectedStatus)
    {
        string binary = Assemble(name);
        try
        {
            VmmResult result = VmmProcess.Run("run", binary);
            Assert.Equal(expectedOutput, result.Stdout);
            Assert.Equal(expectedStatus, result.ExitCode);
        }
        finally
        {
            File.Delete(binary);
        }
    }

    internal static string Assemble(string name)
    {
        string source = Repo.Fixture("nasm", name + ".asm");
        string output = Path.Combine(Path.GetTempPath(), $"vmm-nasm-{name}-{Guid.NewGuid():N}.bin");
        var info = new ProcessStartInfo("nasm") { RedirectStandardError = true };
        foreach (string argument in new[] { "-f", "bin", "-o", output, source })
        {
            info.ArgumentList.Add(argument);
        }

        using Process nasm = Process.Start(info) ?? throw new InvalidOperationException("cannot start nasm (make setup installs it)");
        string errors = nasm.StandardError.ReadToEnd();
        nasm.WaitForExit();
        Assert.True(nasm.ExitCode == 0, $"nasm failed: {errors}");
        return output;
    }
}
