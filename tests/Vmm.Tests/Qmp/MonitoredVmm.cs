using System.Net.Sockets;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Qmp;

/// <summary>
/// A real `dotnet vmm run GUEST --monitor unix:PATH` child process with its socket in a private temporary directory
/// (short, because sun_path is 108 bytes). Ready once the socket accepts connections.
/// </summary>
public sealed class MonitoredVmm : IDisposable
{
    private MonitoredVmm(string directory, string socketPath, VmmProcess process)
    {
        Directory = directory;
        SocketPath = socketPath;
        Process = process;
    }

    public string Directory { get; }

    public string SocketPath { get; }

    public VmmProcess Process { get; }

    public string GuestImage { get; private init; } = "";

    public static MonitoredVmm Start(string guest, params string[] extraArguments)
    {
        string directory = System.IO.Directory.CreateTempSubdirectory("vmm-qmp-").FullName;
        string socketPath = Path.Combine(directory, "qmp.sock");
        string image = Repo.Guest(guest);
        VmmProcess process = VmmProcess.Start(["run", image, "--monitor", $"unix:{socketPath}", .. extraArguments], environment: null);
        var vmm = new MonitoredVmm(directory, socketPath, process) { GuestImage = image };
        try
        {
            vmm.WaitUntilListening(TimeSpan.FromSeconds(30));
        }
        catch
        {
            vmm.Dispose();
            throw;
        }

        return vmm;
    }

    public QmpTestClient Connect(bool negotiate = true) => QmpTestClient.Connect(SocketPath, negotiate);

    /// <summary>Reads the spin/tsc guests' dword counter at guest physical 0x6000 through pmemsave.</summary>
    public uint ReadCounter(QmpTestClient client) => BitConverter.ToUInt32(Pmemsave(client, 0x6000, 4));

    public byte[] Pmemsave(QmpTestClient client, ulong address, ulong size)
    {
        string file = Path.Combine(Directory, $"dump-{Guid.NewGuid():N}.bin");
        client.Return("pmemsave", new { val = address, size, filename = file });
        byte[] bytes = File.ReadAllBytes(file);
        File.Delete(file);
        return bytes;
    }

    private void WaitUntilListening(TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (File.Exists(SocketPath))
            {
                using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    probe.Connect(new UnixDomainSocketEndPoint(SocketPath));
                    return;
                }
                catch (SocketException)
                {
                    // Not accepting yet.
                }
            }

            if (Process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the monitor socket never came up. exited: {Process.HasExited} stderr: [{Process.Stderr}]");
            }

            Thread.Sleep(20);
        }
    }

    public void Dispose()
    {
        Process.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A file still being written by a dying process: the temp directory is cleaned up eventually anyway.
        }
    }
}
