using System.Diagnostics;
using System.Text;

namespace Vmm.Tests.Infrastructure;

/// <summary>
/// The real `dotnet vmm` entry point as a child process: raw stdout bytes (the guest's serial), stderr text
/// (logs, diagnostics), the exit status, and a way to wait for output or to kill it.
/// </summary>
public sealed class VmmProcess : IDisposable
{
    private readonly Process process;
    private readonly MemoryStream stdout = new();
    private readonly StringBuilder stderr = new();
    private readonly Task stdoutPump;
    private readonly Task stderrPump;
    private readonly object gate = new();

    private VmmProcess(Process process)
    {
        this.process = process;
        stdoutPump = Task.Run(async () =>
        {
            byte[] buffer = new byte[4096];
            Stream stream = process.StandardOutput.BaseStream;
            int read;
            while ((read = await stream.ReadAsync(buffer)) > 0)
            {
                lock (gate)
                {
                    stdout.Write(buffer, 0, read);
                    Monitor.PulseAll(gate);
                }
            }
        });
        stderrPump = Task.Run(async () =>
        {
            char[] buffer = new char[4096];
            int read;
            while ((read = await process.StandardError.ReadAsync(buffer)) > 0)
            {
                lock (gate)
                {
                    stderr.Append(buffer, 0, read);
                    Monitor.PulseAll(gate);
                }
            }
        });
    }

    public static VmmProcess Start(params string[] arguments) => Start(arguments, environment: null);

    public static VmmProcess Start(IEnumerable<string> arguments, IDictionary<string, string>? environment, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        info.ArgumentList.Add(Repo.VmmDll);
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (string key in info.Environment.Keys.Where(k => k.StartsWith("VMM_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(key);
        }

        // The one VMM_ variable kept: the accelerator of this test pass (an explicit --accel still wins).
        info.Environment["VMM_ACCEL"] = TestAccelerator.ChoiceName;

        if (environment is not null)
        {
            foreach ((string key, string value) in environment)
            {
                info.Environment[key] = value;
            }
        }

        return new VmmProcess(Process.Start(info)!);
    }

    /// <summary>Runs to completion and returns the result; fails the test if it does not end in time.</summary>
    public static VmmResult Run(params string[] arguments) => Run(arguments, TimeSpan.FromSeconds(60));

    public static VmmResult Run(string[] arguments, TimeSpan timeout, IDictionary<string, string>? environment = null, string? stdin = null, string? workingDirectory = null)
    {
        using VmmProcess vmm = Start(arguments, environment, workingDirectory);
        if (stdin is not null)
        {
            vmm.WriteInput(stdin);
        }

        vmm.CloseInput();
        return vmm.WaitForExit(timeout);
    }

    public int ProcessId => process.Id;

    public byte[] StdoutBytes
    {
        get
        {
            lock (gate)
            {
                return stdout.ToArray();
            }
        }
    }

    public string Stdout => Encoding.Latin1.GetString(StdoutBytes);

    public string Stderr
    {
        get
        {
            lock (gate)
            {
                return stderr.ToString();
            }
        }
    }

    public bool HasExited => process.HasExited;

    public void WriteInput(string text)
    {
        process.StandardInput.Write(text);
        process.StandardInput.Flush();
    }

    public void CloseInput() => process.StandardInput.Close();

    /// <summary>Waits until stdout satisfies <paramref name="condition"/>; throws with both streams if it never does.</summary>
    public string WaitForStdout(Func<string, bool> condition, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        lock (gate)
        {
            while (true)
            {
                string text = Encoding.Latin1.GetString(stdout.GetBuffer(), 0, (int)stdout.Length);
                if (condition(text))
                {
                    return text;
                }

                TimeSpan left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero || (process.HasExited && stdoutPump.IsCompleted))
                {
                    throw new TimeoutException($"stdout never matched. stdout: [{Tail(text)}] stderr: [{Tail(stderr.ToString())}] exited: {process.HasExited}");
                }

                Monitor.Wait(gate, left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200));
            }
        }
    }

    public VmmResult WaitForExit(TimeSpan timeout)
    {
        if (!process.WaitForExit(timeout))
        {
            Kill();
            throw new TimeoutException($"dotnet vmm did not exit within {timeout}. stdout: [{Tail(Stdout)}] stderr: [{Tail(Stderr)}]");
        }

        Task.WaitAll([stdoutPump, stderrPump], TimeSpan.FromSeconds(10));
        return new VmmResult(process.ExitCode, StdoutBytes, Stderr);
    }

    public void Kill()
    {
        try
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    private static string Tail(string text) => text.Length > 2000 ? "…" + text[^2000..] : text;

    public void Dispose()
    {
        if (!process.HasExited)
        {
            Kill();
        }

        process.Dispose();
    }
}

public sealed record VmmResult(int ExitCode, byte[] StdoutBytes, string Stderr)
{
    public string Stdout => Encoding.Latin1.GetString(StdoutBytes);

    public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
}
