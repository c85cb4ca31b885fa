using System.Net.Sockets;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>Precopy between two machines in this process, over a real Unix socket, on the accelerator of the test pass.</summary>
public class PrecopyTests : IDisposable
{
    private const ulong Memory = 128 << 20;
    private const ulong Dirtied = 16 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-precopy-").FullName;

    private string SocketPath(string name) => Path.Combine(dir, name);

    [Theory]
    [InlineData(RamBackend.Anonymous)]
    [InlineData(RamBackend.Shared)]
    [InlineData(RamBackend.Hugetlbfs)]
    public void RunningDirtyGuestMovesWithoutLosingAByte(RamBackend backend)
    {
        using TestMachine source = TestMachine.Create(Memory, backend, "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory, backend);
        source.Machine.Start();
        source.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the source");

        MigrationStats stats = Migrate(source, destination, SocketPath("m.sock"));

        Assert.Equal(MigrationStatus.Completed, stats.Status);
        Assert.Equal(RunState.PostMigrate, source.Machine.RunState);
        Assert.Equal(RunState.Running, destination.Machine.RunState);
        Assert.True(stats.NormalPages >= Dirtied / 4096, $"only {stats.NormalPages} pages sent with data");
        Assert.True(stats.DuplicatePages > 0);

        // The guest carries on over there: more passes, printed on the destination's serial port.
        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
    }

    [Fact]
    public void GuestTimeNeverRunsBackwardsAcrossMigration()
    {
        using TestMachine source = TestMachine.Create(guest: "tsc-counter");
        using TestMachine destination = TestMachine.Create();
        source.Machine.Start();
        Wait.Until(() => source.ReadUInt32(0x6000) > 10_000, "the TSC counter never ran");

        Assert.Equal(MigrationStatus.Completed, Migrate(source, destination, SocketPath("tsc.sock")).Status);
        uint atArrival = destination.ReadUInt32(0x6000);
        Wait.Until(() => destination.ReadUInt32(0x6000) > atArrival + 50_000, "the TSC counter did not continue on the destination");

        // The guest compares every RDTSC with the previous one and exits with status 37 (after printing T) on a backwards step.
        Assert.False(destination.Machine.Exited.IsCompleted, "the guest stopped on the destination");
        Assert.DoesNotContain("T", destination.Serial.Text);
    }

    [Fact]
    public void ConnectionRefusedLeavesTheSourceRunning()
    {
        using TestMachine source = TestMachine.Create(guest: "dirty-16m");
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass");

        var migration = source.Machine.Migration.Migrate($"unix:{SocketPath("nobody.sock")}");
        Assert.True(migration.Completion.Wait(TimeSpan.FromSeconds(30)));

        Assert.Equal(MigrationStatus.Failed, migration.Stats.Status);
        Assert.Contains("cannot connect", migration.Stats.ErrorDescription);
        AssertStillRunning(source);
    }

    [Theory]
    [InlineData(ProxyFault.Drop, "truncated migration stream")]
    [InlineData(ProxyFault.FlipBit, "CRC-32C mismatch")]
    public void BrokenStreamFailsBothSidesAndNoGuestRunsOnTheDestination(ProxyFault fault, string destinationError)
    {
        using TestMachine source = TestMachine.Create(Memory, guest: "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory);
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass");

        string target = SocketPath("dst.sock");
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{target}"));
        Exception? incomingError = null;
        var incoming = Task.Run(() =>
        {
            try
            {
                destination.Machine.Migration.RunIncoming(listener);
            }
            catch (Exception e)
            {
                incomingError = e;
            }
        });
        using var proxy = new FaultyProxy(SocketPath("proxy.sock"), target, faultAt: 3 << 20, fault);

        var migration = source.Machine.Migration.Migrate($"unix:{SocketPath("proxy.sock")}");
        Assert.True(migration.Completion.Wait(TimeSpan.FromSeconds(60)));
        Assert.True(incoming.Wait(TimeSpan.FromSeconds(30)));

        Assert.Equal(MigrationStatus.Failed, migration.Stats.Status);
        Assert.NotNull(incomingError);
        Assert.Contains(destinationError, incomingError.Message);
        Assert.Equal(RunState.Prelaunch, destination.Machine.RunState);
        Assert.Empty(destination.Serial.Text);
        AssertStillRunning(source);
    }

    [Fact]
    public void CancelledMigrationLeavesTheSourceRunning()
    {
        using TestMachine source = TestMachine.Create(Memory, guest: "dirty-16m");
        using TestMachine destination = TestMachine.Create(Memory);
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass");
        source.Machine.Migration.SetParameters(new MigrationParameters { MaxBandwidth = 4 << 20 });

        string path = SocketPath("cancel.sock");
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{path}"));
        var incoming = Task.Run(() => Assert.ThrowsAny<Exception>(() => destination.Machine.Migration.RunIncoming(listener)));
        var migration = source.Machine.Migration.Migrate($"unix:{path}");
        Wait.Until(() => migration.Stats.Status == MigrationStatus.Active && migration.Stats.TransferredBytes > 1 << 20, "the migration never got going");

        source.Machine.Migration.Cancel();
        Assert.True(migration.Completion.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal(MigrationStatus.Cancelled, migration.Stats.Status);
        Assert.True(incoming.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal(RunState.Prelaunch, destination.Machine.RunState);
        AssertStillRunning(source);
    }

    [Fact]
    public void DestinationWithAnotherLayoutRefusesBeforeTouchingMemory()
    {
        using TestMachine source = TestMachine.Create(Memory, guest: "dirty-16m");
        using TestMachine destination = TestMachine.Create(64 << 20);
        source.Machine.Start();

        string path = SocketPath("layout.sock");
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{path}"));
        var incoming = Task.Run(() => Assert.Throws<MigrationFailedException>(() => destination.Machine.Migration.RunIncoming(listener)));
        var migration = source.Machine.Migration.Migrate($"unix:{path}");
        Assert.True(migration.Completion.Wait(TimeSpan.FromSeconds(30)));

        MigrationFailedException refused = incoming.GetAwaiter().GetResult();
        Assert.Contains("RAM block 'pc.ram': max size 134217728 bytes on the source, 67108864 here", refused.Message);
        Assert.Equal(MigrationStatus.Failed, migration.Stats.Status);
        Assert.Contains("does not match", migration.Stats.ErrorDescription);
        Assert.Equal(0, destination.ReadByte(0x7C00));
        AssertStillRunning(source);
    }

    [Fact]
    public void AGuestStoppedByTheUserArrivesStopped()
    {
        using TestMachine source = TestMachine.Create(guest: "dirty-16m");
        using TestMachine destination = TestMachine.Create();
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass");
        source.Machine.Stop();

        Assert.Equal(MigrationStatus.Completed, Migrate(source, destination, SocketPath("paused.sock")).Status);
        Assert.Equal(RunState.Paused, destination.Machine.RunState);
        Thread.Sleep(200);
        Assert.Empty(destination.Serial.Text);

        destination.Machine.Continue();
        destination.WaitForSerial(s => s.Contains('B'), "a pass after cont on the destination");
    }

    [Fact]
    public void PrecopyOverTcpLoopbackWorksLikeUnixSockets()
    {
        using TestMachine source = TestMachine.Create(32 << 20, guest: "dirty-16m");
        using TestMachine destination = TestMachine.Create(32 << 20);
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass");

        // A free port, found by letting the kernel pick one (port 0 is not a valid migration URI: a source could never find it).
        int port;
        using (var probe = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
            port = ((System.Net.IPEndPoint)probe.LocalEndPoint!).Port;
        }

        destination.Machine.SetStoppedState(RunState.InMigrate);
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"tcp:127.0.0.1:{port}"));
        var incoming = Task.Run(() => destination.Machine.Migration.RunIncoming(listener));
        var migration = source.Machine.Migration.Migrate($"tcp:127.0.0.1:{port}");
        Assert.True(migration.Completion.Wait(TimeSpan.FromSeconds(120)), "the migration did not finish");
        Assert.True(incoming.Wait(TimeSpan.FromSeconds(30)), "the destination did not finish");

        Assert.Equal(MigrationStatus.Completed, migration.Stats.Status);
        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 2, "passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
    }

    [Fact]
    public void IncomingRefusesToReplaceAFileThatIsNotASocket()
    {
        string path = SocketPath("keep.txt");
        File.WriteAllText(path, "precious");
        var error = Assert.Throws<MigrationFailedException>(() => IncomingMigration.Listen(MigrationUri.Parse($"unix:{path}")));
        Assert.Contains("is not a socket", error.Message);
        Assert.Equal("precious", File.ReadAllText(path));
    }

    /// <summary>Runs a whole migration from <paramref name="source"/> into <paramref name="destination"/> over a Unix socket.</summary>
    internal static MigrationStats Migrate(TestMachine source, TestMachine destination, string socketPath)
    {
        destination.Machine.SetStoppedState(RunState.InMigrate);
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{socketPath}"));
        var incoming = Task.Run(() => destination.Machine.Migration.RunIncoming(listener));
        var migration = source.Machine.Migration.Migrate($"unix:{socketPath}");
        Assert.True(migration.Completion.Wait(TimeSpan.FromSeconds(120)), "the migration did not finish");
        Assert.True(incoming.Wait(TimeSpan.FromSeconds(30)), "the destination did not finish");
        return migration.Stats;
    }

    private static void AssertStillRunning(TestMachine machine)
    {
        Assert.Equal(RunState.Running, machine.Machine.RunState);
        int before = machine.CountB();
        machine.WaitForSerial(s => s.Count(c => c == 'B') > before + 2, "the source guest to keep running");
    }


    public void Dispose() => Directory.Delete(dir, recursive: true);
}
