using System.Diagnostics;

namespace Vmm.Linux.Tests;

/// <summary>
/// The kernel's own answer to "how big is this struct, where is this field, what is this ioctl number":
/// abi_probe.c compiled against this machine's kernel headers and run once per test process.
/// </summary>
public static class KernelAbi
{
    private static readonly Lazy<IReadOnlyDictionary<string, ulong>> Facts = new(Probe);

    public static ulong Size(string structName) => Get($"sizeof:{structName}");

    public static ulong Offset(string structName, string field) => Get($"offsetof:{structName}.{field}");

    public static ulong Value(string name) => Get($"value:{name}");

    private static ulong Get(string key) =>
        Facts.Value.TryGetValue(key, out ulong value) ? value : throw new KeyNotFoundException($"abi_probe.c does not print {key}");

    private static IReadOnlyDictionary<string, ulong> Probe()
    {
        string source = Path.Combine(AppContext.BaseDirectory, "abi_probe.c");
        string binary = Path.Combine(Path.GetTempPath(), $"vmm-abi-probe-{Environment.ProcessId}");
        Run("cc", $"-O0 -o {binary} {source}");
        try
        {
            var facts = new Dictionary<string, ulong>();
            foreach (string line in Run(binary, string.Empty).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                int equals = line.LastIndexOf('=');
                facts[line[..equals]] = ulong.Parse(line[(equals + 1)..]);
            }

            return facts;
        }
        finally
        {
            File.Delete(binary);
        }
    }

    private static string Run(string file, string arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        string output = process.StandardOutput.ReadToEnd();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {arguments} failed ({process.ExitCode}): {error}");
        }

        return output;
    }
}
