using System.Diagnostics;
using System.Text;

namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>Runs a program to completion with a timeout, collecting stderr; kills its whole tree if it overruns.</summary>
public static class ChildProcess
{
    public static (int? ExitCode, string Stderr, TimeSpan Elapsed) Run(ProcessStartInfo info, TimeSpan timeout)
    {
        info.RedirectStandardInput = true;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        var stderr = new StringBuilder();
        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = info };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (stderr)
                {
                    stderr.AppendLine(e.Data);
                }
            }
        };
        // Nobody reads stdout (results come through the serial file), but a full pipe would block the child.
        process.OutputDataReceived += (_, _) => { };
        process.Start();
        process.StandardInput.Close();
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        int? exitCode = null;
        if (process.WaitForExit(timeout))
        {
            // The parameterless wait also drains the redirected streams.
            process.WaitForExit();
            exitCode = process.ExitCode;
        }
        else
        {
            try
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(10_000);
            }
            catch (InvalidOperationException)
            {
                // It ended just now.
            }
        }

        lock (stderr)
        {
            return (exitCode, stderr.ToString(), clock.Elapsed);
        }
    }

    /// <summary>A command line as a shell would take it, for reports.</summary>
    public static string Describe(ProcessStartInfo info, IEnumerable<KeyValuePair<string, string>>? environment = null)
    {
        var words = new List<string>();
        if (environment is not null)
        {
            words.AddRange(environment.Select(kv => $"{kv.Key}={kv.Value}"));
        }

        words.Add(info.FileName);
        words.AddRange(info.ArgumentList.Select(a => a.Contains(' ') ? $"'{a}'" : a));
        return string.Join(' ', words);
    }
}
