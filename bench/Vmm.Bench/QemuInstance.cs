using System.Diagnostics;

namespace Vmm.Bench;

/// <summary>
/// One qemu-system-x86_64 process on TCG running a boot disk made by <see cref="QemuTcg.BootDisk"/>: COM1 on its
/// stdout (recorded with arrival times), port 0xF4 its isa-debug-exit, and optionally a QMP socket. Disposing kills it.
/// </summary>
internal sealed class QemuInstance : IDisposable
{
    private readonly Process process;
    private readonly Thread reader;
    private readonly Task<string> errors;
    private readonly string? qmpPath;
    private QmpClient? qmp;

    public QemuInstance(string disk, ulong memoryMiB, string? qmpPath = null, string? incoming = null)
    {
        this.qmpPath = qmpPath;
        var start = new ProcessStartInfo(QemuTcg.Binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        var args = new List<string>
        {
            "-accel", "tcg", "-m", $"{memoryMiB}", "-display", "none", "-monitor", "none", "-serial", "stdio",
            "-drive", $"file={disk},format=raw,if=ide,snapshot=on", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-no-reboot",
        };
        if (qmpPath is not null)
        {
            args.AddRange(["-qmp", $"unix:{qmpPath},server=on,wait=off"]);
        }

        if (incoming is not null)
        {
            args.AddRange(["-incoming", incoming]);
        }

        args.ForEach(start.ArgumentList.Add);
        process = Process.Start(start) ?? throw new InvalidOperationException($"{QemuTcg.Binary} did not start");
        reader = new Thread(() =>
        {
            Stream output = process.StandardOutput.BaseStream;
            byte[] buffer = new byte[4096];
            int n;
            while ((n = output.Read(buffer)) > 0)
            {
                Output.Write(buffer.AsSpan(0, n));
            }
        }) { IsBackground = true, Name = "qemu stdout" };
        reader.Start();
        errors = process.StandardError.ReadToEndAsync();
    }

    /// <summary>What the guest printed on COM1, with arrival times.</summary>
    public SerialTimeline Output { get; } = new();

    /// <summary>QMP, connected on first use.</summary>
    public QmpClient Qmp => qmp ??= QmpClient.Connect(qmpPath ?? throw new InvalidOperationException("started without QMP"), TimeSpan.FromSeconds(10));

    /// <summary>Waits for the guest to exit (isa-debug-exit) or kills it when <paramref name="limit"/> passes.</summary>
    public void RunFor(TimeSpan limit)
    {
        if (!process.WaitForExit(limit))
        {
            process.Kill();
            process.WaitForExit();
        }

        reader.Join();
    }

    /// <summary>QEMU's stderr so far (complete once it has exited), for error messages.</summary>
    public string Errors => errors.IsCompleted ? errors.Result.Trim() : "";

    public void Dispose()
    {
        qmp?.Dispose();
        if (!process.HasExited)
        {
            process.Kill();
            process.WaitForExit();
        }

        process.Dispose();
        if (qmpPath is not null)
        {
            File.Delete(qmpPath);
        }
    }
}
