using Vmm.Tests.Infrastructure;
using Vmm.Tests.Qmp;

namespace Vmm.Tests.Migration;

/// <summary>
/// Issue 18: TLS between two real `dotnet vmm` processes, configured as a QEMU user would — migrate-set-parameters
/// tls-creds / tls-hostname / tls-authz on both monitors — then `dotnet vmm migrate`: the guest arrives consistent;
/// with a tls-authz that does not name the source's certificate, the migration fails, the source's guest runs on and
/// the destination keeps waiting in inmigrate.
/// </summary>
[Collection(MigrationProcessCollection.Name)]
public sealed class TlsProcessTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vmm-mig-tls-").FullName;

    [Theory]
    [InlineData("vmm-source", true)]
    [InlineData("someone-else", false)]
    public void TwoTlsProcessesMigrateOnlyAnAllowedSource(string allowed, bool migrates)
    {
        string creds = TestCertificates.Create(Path.Combine(dir, "pki"));
        using MigrationVmm source = MigrationVmm.StartSource(dir, memory: "32M");
        using MigrationVmm destination = MigrationVmm.StartDestination(dir, memory: "32M");
        using (QmpTestClient client = destination.Connect())
        {
            client.Return("migrate-set-parameters", new Dictionary<string, string> { ["tls-creds"] = creds, ["tls-authz"] = allowed });
        }

        using (QmpTestClient client = source.Connect())
        {
            client.Return("migrate-set-parameters", new Dictionary<string, string> { ["tls-creds"] = creds, ["tls-hostname"] = "localhost" });
        }

        source.WaitForMorePasses(2, from: 0);
        VmmResult verb = VmmProcess.Run(["migrate", "--monitor", source.MonitorPath, "--to", destination.IncomingUri], TimeSpan.FromSeconds(120));
        if (migrates)
        {
            Assert.True(verb.ExitCode == 0, $"migrate exited {verb.ExitCode}; stdout: {verb.Stdout} stderr: {verb.Stderr}");
            Assert.Equal("postmigrate", source.RunStatus());
            Assert.Equal("running", destination.RunStatus());
            destination.WaitForMorePasses(2);
            Assert.Null(destination.StopAndCheckDirtyConsistency());
        }
        else
        {
            Assert.Equal(1, verb.ExitCode);
            Assert.Contains("vmm: error: migration failed:", verb.Stderr);
            Assert.Equal("running", source.RunStatus());
            Assert.Equal("inmigrate", destination.RunStatus());
            Assert.False(destination.Process.HasExited);
        }
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
