using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Vmm.Bench;

/// <summary>
/// The postcopy benchmark's workload the way a user runs it: two fresh `dotnet vmm run` processes (each migrates
/// once, so nothing of the switchover has run in them before) and `dotnet vmm migrate --postcopy --postcopy-after 0.2`;
/// total time and downtime from the verb's summary, medians over the runs. The in-process `postcopy` benchmark
/// measures warm code; this one shows what a cold process costs on top.
/// </summary>
public static partial class PostcopyColdBenchmark
{
    private const int Runs = 5;

    public static void Run()
    {
        string vmm = VmmDll();
        string image = InProcessPostcopy.GuestImagePath("dirty-256m");
        Console.WriteLine($"postcopy-cold: dirty-256m, 512 MiB RAM, two fresh dotnet vmm processes per run, postcopy after 0.2 s, {Runs} runs");
        Console.WriteLine("  run  total ms  downtime us");
        var totals = new List<double>();
        var downtimes = new List<double>();
        for (int run = 1; run <= Runs; run++)
        {
            (double total, double downtime) = Once(vmm, image);
            totals.Add(total);
            downtimes.Add(downtime);
            Console.WriteLine($"  {run,3}  {total,8:F0}  {downtime,11:F0}");
        }

        Console.WriteLine($"  med  {Stats.Median(totals),8:F0}  {Stats.Median(downtimes),11:F0}");
    }

    private static (double TotalMs, double DowntimeUs) Once(string vmm, string image)
    {
        string dir = Directory.CreateTempSubdirectory("vmm-bench-cold-").FullName;
        string incoming = Path.Combine(dir, "mig.sock");
        string sourceMonitor = Path.Combine(dir, "src.qmp");
        string destinationMonitor = Path.Combine(dir, "dst.qmp");
        using Process destination = Start(vmm, ["run", "--incoming", $"unix:{incoming}", "--memory", "512M", "--serial", "none", "--monitor", $"unix:{destinationMonitor}"], drain: true);
        using Process source = Start(vmm, ["run", image, "--memory", "512M", "--serial", "none", "--monitor", $"unix:{sourceMonitor}"], drain: true);
        try
        {
            WaitForFile(destinationMonitor);
            WaitForFile(sourceMonitor);

            // As in the postcopy benchmark: the guest has dirtied its 256 MiB once before the migration starts.
            Thread.Sleep(1500);
            using Process migrate = Start(vmm, ["migrate", "--monitor", sourceMonitor, "--to", $"unix:{incoming}", "--postcopy", "--postcopy-after", "0.2", "--destination-monitor", destinationMonitor]);
            string summary = migrate.StandardOutput.ReadToEnd();
            string errors = migrate.StandardError.ReadToEnd();
            if (!migrate.WaitForExit(120_000) || migrate.ExitCode != 0)
            {
                throw new InvalidOperationException($"postcopy-cold benchmark: migrate failed: {summary} {errors}");
            }

            return (Field(TotalTime(), summary), Field(Downtime(), summary));
        }
        finally
        {
            foreach ((Process process, string monitor) in new[] { (source, sourceMonitor), (destination, destinationMonitor) })
            {
                using Process quit = Start(vmm, ["monitor", monitor, "quit"], drain: true);
                quit.WaitForExit(30_000);
                if (!process.WaitForExit(30_000))
                {
                    process.Kill();
                }
            }

            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>artifacts/bin/Vmm/CONFIG/dotnet-vmm.dll, next to this benchmark's own build output.</summary>
    private static string VmmDll()
    {
        string configuration = new DirectoryInfo(AppContext.BaseDirectory).Name;
        return Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "Vmm", configuration, "dotnet-vmm.dll"));
    }

    /// <param name="drain">Read and drop the output as it comes (a full pipe would stall the process).</param>
    private static Process Start(string vmm, string[] arguments, bool drain = false)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(vmm);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Process process = Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet");
        if (drain)
        {
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        return process;
    }

    private static void WaitForFile(string path)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while (!File.Exists(path))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"postcopy-cold benchmark: {path} never appeared");
            }

            Thread.Sleep(10);
        }
    }

    private static double Field(Regex pattern, string summary)
    {
        Match match = pattern.Match(summary);
        return match.Success
            ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture)
            : throw new InvalidOperationException($"postcopy-cold benchmark: no '{pattern}' in the summary: {summary}");
    }

    [GeneratedRegex(@"total time\s*\|\s*(\d+) ms")]
    private static partial Regex TotalTime();

    [GeneratedRegex(@"downtime\s*\|\s*(\d+) us")]
    private static partial Regex Downtime();
}
