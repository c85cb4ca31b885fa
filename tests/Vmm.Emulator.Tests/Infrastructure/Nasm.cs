using System.Diagnostics;

namespace Vmm.Emulator.Tests.Infrastructure;

/// <summary>Assembles test snippets with nasm (installed by `make setup`): an outside witness for the encodings.</summary>
public static class Nasm
{
    public static byte[] Assemble(string source)
    {
        string dir = Directory.CreateTempSubdirectory("vmm-nasm-").FullName;
        try
        {
            string input = Path.Combine(dir, "snippet.asm");
            string output = Path.Combine(dir, "snippet.bin");
            File.WriteAllText(input, source);
            var start = new ProcessStartInfo("nasm", ["-f", "bin", "-o", output, input]) { RedirectStandardError = true };
            using Process nasm = Process.Start(start) ?? throw new InvalidOperationException("nasm did not start");
            string errors = nasm.StandardError.ReadToEnd();
            nasm.WaitForExit();
            if (nasm.ExitCode != 0)
            {
                throw new InvalidOperationException($"nasm failed: {errors}\n{source}");
            }

            return File.ReadAllBytes(output);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
