using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Vmm.Migration;
using Vmm.Migration.Stream;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;
using Vmm.Tests.Qmp;

namespace Vmm.Tests.Migration;

/// <summary>
/// Issue 18: `dotnet vmm run --incoming` whose source connected, was accepted, and then says nothing more. QMP quit,
/// SIGTERM and SIGINT end it at once with their usual statuses, cleanly (one process, no stack trace, no guest output).
/// </summary>
[Collection(MigrationProcessCollection.Name)]
public sealed partial class IncomingInterruptProcessTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vmm-mig-int-").FullName;

    public enum Stop
    {
        Quit,
        Sigterm,
        Sigint,
    }

    [Theory]
    [InlineData(Stop.Quit, 0)]
    [InlineData(Stop.Sigterm, 143)]
    [InlineData(Stop.Sigint, 130)]
    public void AWaitForASilentSourceEndsPromptly(Stop stop, int status)
    {
        using MigrationVmm destination = MigrationVmm.StartDestination(dir, memory: "16M");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 30_000 };
        socket.Connect(new UnixDomainSocketEndPoint(destination.IncomingPath));
        using var network = new NetworkStream(socket, ownsSocket: false);
        StreamHeader.Write(network);
        var writer = new RecordWriter(network);
        new RamLayout([new RamBlockDescriptor("pc.ram", 0, 16 << 20, 16 << 20, 4096, RamBackend.Anonymous)]).Write(writer);
        writer.Flush();
        Assert.Equal(RecordType.SetupAccepted, new RecordReader(network).Read().Type);

        // Now the destination waits for the next record, which never comes.
        var clock = Stopwatch.StartNew();
        switch (stop)
        {
            case Stop.Quit:
                using (QmpTestClient client = destination.Connect())
                {
                    client.Return("quit");
                }

                break;
            case Stop.Sigterm:
                Assert.Equal(0, Kill(destination.Process.ProcessId, 15));
                break;
            default:
                Assert.Equal(0, Kill(destination.Process.ProcessId, 2));
                break;
        }

        VmmResult result = destination.Process.WaitForExit(TimeSpan.FromSeconds(20));
        Assert.InRange(clock.Elapsed.TotalSeconds, 0, 10);
        Assert.Equal(status, result.ExitCode);
        Assert.Empty(result.StdoutBytes);
        Assert.DoesNotContain("   at ", result.Stderr);
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    public void Dispose()
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
            // Cleaned up with the rest of temp eventually.
        }
    }
}
