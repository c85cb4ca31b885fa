using System.Net;
using System.Net.Sockets;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Source;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// Issue 18: TLS on a `tcp:` migration (migrate-set-parameters tls-creds, tls-hostname, tls-authz). Two TLS instances
/// migrate a running dirty guest consistently; a source whose client certificate tls-authz does not allow, or a
/// destination whose certificate does not carry tls-hostname, is refused in the handshake — before any record is read
/// — and the source's guest runs on.
/// </summary>
public sealed class TlsMigrationTests : IDisposable
{
    private const ulong Memory = 32 << 20;
    private const ulong Dirtied = 16 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-tls-").FullName;

    [Fact]
    public void TwoTlsInstancesMigrateADirtyGuestConsistently()
    {
        string creds = TestCertificates.Create(Path.Combine(dir, "pki"));
        using TestMachine source = StartSource(new MigrationTls(creds, "localhost", []));
        using TestMachine destination = TestMachine.Create(Memory);
        destination.Machine.Migration.SetParameters(new MigrationParameters { Tls = new MigrationTls(creds, null, ["vmm-source"]) });
        (Socket listener, string uri) = ListenTcp();
        using (listener)
        {
            Task<Exception?> incoming = RunIncoming(destination, listener);
            MigrationSource migration = source.Machine.Migration.Migrate(uri);
            Assert.True(migration.Completion.Wait(TimeSpan.FromSeconds(120)), "the TLS migration did not finish");
            Assert.True(incoming.Wait(TimeSpan.FromSeconds(30)));
            Assert.Null(incoming.Result);
            Assert.Equal(MigrationStatus.Completed, migration.Stats.Status);
        }

        Assert.Equal(RunState.Running, destination.Machine.RunState);
        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
    }

    /// <summary>Postcopy over TLS: the answers share the main connection (no preempt channel under TLS), nothing is lost.</summary>
    [Fact]
    public void PostcopyOverTlsMovesADirtyGuestConsistently()
    {
        string creds = TestCertificates.Create(Path.Combine(dir, "pki"));
        using TestMachine source = StartSource(new MigrationTls(creds, "localhost", []));
        using TestMachine destination = TestMachine.Create(Memory);
        var postcopy = new MigrationCapabilities { PostcopyRam = true };
        source.Machine.Migration.SetCapabilities(postcopy);
        destination.Machine.Migration.SetCapabilities(postcopy);
        destination.Machine.Migration.SetParameters(new MigrationParameters { Tls = new MigrationTls(creds, null, ["vmm-source"]) });
        (Socket listener, string uri) = ListenTcp();
        using (listener)
        {
            Task<Exception?> incoming = RunIncoming(destination, listener);
            MigrationSource migration = source.Machine.Migration.Migrate(uri);
            Wait.Until(() => migration.Stats.TransferredBytes > 2 << 20 || migration.Stats.Status.IsFinished(), "precopy never got going");
            source.Machine.Migration.StartPostcopy();
            Assert.True(migration.Completion.Wait(TimeSpan.FromSeconds(120)), $"the TLS postcopy did not finish: {migration.Stats}");
            Assert.True(incoming.Wait(TimeSpan.FromSeconds(60)));
            Assert.Null(incoming.Result);
            Assert.Equal(MigrationStatus.Completed, migration.Stats.Status);
            Assert.Equal(0ul, migration.Stats.PostcopyPreemptPages);
        }

        Assert.Equal(MigrationStatus.Completed, destination.Machine.Migration.Stats!.Status);
        destination.WaitForSerial(s => s.Count(c => c == 'B') >= 3, "three passes on the destination");
        Assert.Null(destination.CheckDirtyConsistency(Dirtied));
    }

    [Fact]
    public void AClientCertificateTlsAuthzDoesNotAllowIsRefusedBeforeAnyRecord()
    {
        string creds = TestCertificates.Create(Path.Combine(dir, "pki"), clientName: "intruder");
        using TestMachine source = StartSource(new MigrationTls(creds, "localhost", []));
        using TestMachine destination = TestMachine.Create(Memory);
        destination.Machine.Migration.SetParameters(new MigrationParameters { Tls = new MigrationTls(creds, null, ["vmm-source"]) });
        // TLS 1.3: the client finishes its side of the handshake before the server judges its certificate, so the
        // source learns of the refusal as a closed connection.
        AssertRefused(source, destination, "the migration connection broke");
    }

    /// <summary>
    /// A client certificate another CA signed, with a name tls-authz allows: the chain is what is refused. (The source
    /// trusts the destination's CA, so only the destination's check can stop it.)
    /// </summary>
    [Fact]
    public void AClientCertificateFromAnotherCaIsRefusedBeforeAnyRecord()
    {
        string creds = TestCertificates.Create(Path.Combine(dir, "pki"));
        string other = TestCertificates.Create(Path.Combine(dir, "other-pki"));
        string mixed = Directory.CreateDirectory(Path.Combine(dir, "mixed-pki")).FullName;
        foreach (string file in new[] { "ca-cert.pem", "server-cert.pem", "server-key.pem" })
        {
            File.Copy(Path.Combine(creds, file), Path.Combine(mixed, file));
        }

        foreach (string file in new[] { "client-cert.pem", "client-key.pem" })
        {
            File.Copy(Path.Combine(other, file), Path.Combine(mixed, file));
        }

        using TestMachine source = StartSource(new MigrationTls(mixed, "localhost", []));
        using TestMachine destination = TestMachine.Create(Memory);
        destination.Machine.Migration.SetParameters(new MigrationParameters { Tls = new MigrationTls(creds, null, ["vmm-source"]) });
        AssertRefused(source, destination, "the migration connection broke");
    }

    [Fact]
    public void ADestinationCertificateWithoutTlsHostnameIsRefusedBeforeAnyRecord()
    {
        string creds = TestCertificates.Create(Path.Combine(dir, "pki"));
        using TestMachine source = StartSource(new MigrationTls(creds, "migration.example", []));
        using TestMachine destination = TestMachine.Create(Memory);
        destination.Machine.Migration.SetParameters(new MigrationParameters { Tls = new MigrationTls(creds, null, []) });
        MigrationStats stats = AssertRefused(source, destination, "TLS: the destination's certificate did not verify for 'migration.example'");

        // The source judged the certificate in the handshake: not one byte of the stream (header, Setup) went out.
        Assert.Equal(0ul, stats.TransferredBytes);
    }

    [Fact]
    public void APlainSourceIsRefusedByATlsDestination()
    {
        string creds = TestCertificates.Create(Path.Combine(dir, "pki"));
        using TestMachine source = StartSource(tls: null);
        using TestMachine destination = TestMachine.Create(Memory);
        destination.Machine.Migration.SetParameters(new MigrationParameters { Tls = new MigrationTls(creds, null, []) });
        AssertRefused(source, destination, "connection");
    }

    /// <summary>
    /// The source fails with its guest running; the destination read no record (still in setup) and waits on. Returns
    /// the source's final stats.
    /// </summary>
    private MigrationStats AssertRefused(TestMachine source, TestMachine destination, string sourceError)
    {
        (Socket listener, string uri) = ListenTcp();
        using (listener)
        {
            Task<Exception?> incoming = RunIncoming(destination, listener);
            MigrationSource migration = source.Machine.Migration.Migrate(uri);
            Assert.True(migration.Completion.Wait(TimeSpan.FromSeconds(60)), "the refused migration did not end");
            Assert.Equal(MigrationStatus.Failed, migration.Stats.Status);
            Assert.Contains(sourceError, migration.Stats.ErrorDescription);
            Assert.Equal(RunState.Running, source.Machine.RunState);

            Assert.False(incoming.IsCompleted, $"the destination gave up instead of waiting for its real source: {(incoming.IsCompleted ? incoming.Result : null)}");
            Assert.Equal(RunState.InMigrate, destination.Machine.RunState);
            Assert.Equal(MigrationStatus.Setup, destination.Machine.Migration.Stats!.Status);
            destination.Machine.Migration.InterruptIncoming();
            listener.Dispose();
            Assert.True(incoming.Wait(TimeSpan.FromSeconds(30)));
            return migration.Stats;
        }
    }

    private static TestMachine StartSource(MigrationTls? tls)
    {
        TestMachine source = TestMachine.Create(Memory, guest: "dirty-16m");
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass on the source");
        source.Machine.Migration.SetParameters(new MigrationParameters { Tls = tls });
        return source;
    }

    private static (Socket Listener, string Uri) ListenTcp()
    {
        int port;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            port = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }

        string uri = $"tcp:127.0.0.1:{port}";
        return (IncomingMigration.Listen(MigrationUri.Parse(uri)), uri);
    }

    private static Task<Exception?> RunIncoming(TestMachine destination, Socket listener)
    {
        destination.Machine.SetStoppedState(RunState.InMigrate);
        return Task.Factory.StartNew<Exception?>(
            () =>
            {
                try
                {
                    destination.Machine.Migration.RunIncoming(listener);
                    return null;
                }
                catch (Exception e)
                {
                    return e;
                }
            },
            TaskCreationOptions.LongRunning);
    }

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
