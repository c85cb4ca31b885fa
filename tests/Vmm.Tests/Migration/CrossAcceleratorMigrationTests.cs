using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// A running guest moves between a VMM on KVM and one on the software CPU, both ways, by precopy and by postcopy:
/// the vCPU state one accelerator saves is what the other loads, and the guest carries on with the same memory.
/// </summary>
[Collection(MigrationProcessCollection.Name)]
public sealed class CrossAcceleratorMigrationTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vmm-xmig-").FullName;

    [SkippableTheory]
    [InlineData("kvm", "emulator", false)]
    [InlineData("emulator", "kvm", false)]
    [InlineData("kvm", "emulator", true)]
    [InlineData("emulator", "kvm", true)]
    public void AGuestMovesBetweenKvmAndTheSoftwareCpu(string from, string to, bool postcopy)
    {
        Skip.IfNot(Machine.AcceleratorSelection.ProbeKvm() is null, "migrating between KVM and the software CPU needs a host where /dev/kvm works");
        using MigrationVmm source = MigrationVmm.StartSource(dir, accel: from);
        using MigrationVmm destination = MigrationVmm.StartDestination(dir, accel: to);
        source.WaitForMorePasses(3, from: 0);

        VmmResult verb = postcopy
            ? PrecopyProcessTests.Verb(source, destination.IncomingUri, "--postcopy", "--postcopy-after", "0", "--destination-monitor", destination.MonitorPath)
            : PrecopyProcessTests.Verb(source, destination.IncomingUri);

        Assert.True(verb.ExitCode == 0, $"migrate exited {verb.ExitCode}; stdout: {verb.Stdout} stderr: {verb.Stderr}");
        Assert.Equal("postmigrate", source.RunStatus());
        Assert.Equal("running", destination.RunStatus());
        destination.WaitForMorePasses(3);
        Assert.DoesNotContain('A', destination.Process.Stdout); // continued, not rebooted
        Assert.Null(destination.StopAndCheckDirtyConsistency());
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);
}
