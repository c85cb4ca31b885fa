using System.Diagnostics;
using System.Text;

namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>
/// Runs a program to completion, collecting stderr. It is killed (with its whole tree) when it overruns its time, or
/// earlier when it stops making progress: a guest that crashed into a loop would otherwise hold a test for the whole
/// timeout, and the harness streams a result per case, so silence means stuck.
/// </summary>
public static class ChildProcess
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>How <see cref="Run"/> ended.</summary>
    /// <param name="ExitCode">The exit status, or null when the program was killed.</param>
    /// <param name="KilledBecause">Why it was killed (null when it exited by itself).</param>
    public sealed record Outcome(int? ExitCode, string? KilledBecause, string Stderr, TimeSpan Elapsed);

    /// <param name="progress">A measure that grows while the program does useful work (bytes of serial output).</param>
    /// <param name="stallTimeout">How long <paramref name="progress"/> may stay still before the program counts as stuck.</param>
    public static Outcome Run(ProcessStartInfo info, TimeSpan timeout, Func<long> progress, TimeSpan stallTimeout)
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

        string? killedBecause = null;
        var lastProgress = progress();
        var lastChange = clock.Elapsed;
        while (!process.WaitForExit(PollInterval))
        {
            var now = progress();
            if (now != lastProgress)
            {
                lastProgress = now;
                lastChange = clock.Elapsed;
            }

            if (clock.Elapsed > timeout)
            {
                killedBecause = $"killed after the timeout of {timeout.TotalSeconds:F0} s";
            }
            else if (clock.Elapsed - lastChange > stallTimeout)
            {
                killedBecause = $"killed after {stallTimeout.TotalSeconds:F0} s without serial output (stuck)";
            }

            if (killedBecause is not null)
            {
                try
                {
                    process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                    // It ended just now.
                }

                break;
            }
        }

        // The parameterless wait also drains the redirected streams.
        process.WaitForExit();
        int? exitCode = killedBecause is null ? process.ExitCode : null;
        lock (stderr)
        {
            return new Outcome(exitCode, killedBecause, stderr.ToString(), clock.Elapsed);
        }
    }

    /// <summary>The size of <paramref name="path"/>, 0 while it does not exist: the progress of a serial log.</summary>
    public static long FileLength(string path)
    {
        try
        {
            return new FileInfo(path).Length;
        }
        catch (IOException)
        {
            return 0;
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
