using System.Buffers.Binary;
using Vmm.Tests.Infrastructure;
using Vmm.Tests.Qmp;

namespace Vmm.Tests.Migration;

/// <summary>
/// A guest with a running timer (bios-timer in its endless mode, under --bios vmm: IRQ 0 at 18.2 Hz, the BIOS counting
/// ticks, the guest counting int 1Ch calls and sleeping in HLT between them) migrated between two processes with
/// precopy and with postcopy: the PIC, the PIT and the BIOS travel as state sections, and on the destination both
/// tick counts continue from where they were at about 18 a second — no jump, no stall.
/// </summary>
[Collection(MigrationProcessCollection.Name)]
public sealed class TimerMigrationTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vmm-tmig-").FullName;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheTickCountNeitherJumpsNorStalls(bool postcopy) => MigrateTimerGuest(postcopy, from: null, to: null);

    [SkippableTheory]
    [InlineData("kvm", "emulator", false)]
    [InlineData("emulator", "kvm", true)]
    public void TheTimerKeepsTickingBetweenKvmAndTheSoftwareCpu(string from, string to, bool postcopy)
    {
        Skip.IfNot(Machine.AcceleratorSelection.ProbeKvm() is null, "migrating between KVM and the software CPU needs a host where /dev/kvm works");
        MigrateTimerGuest(postcopy, from, to);
    }

    private void MigrateTimerGuest(bool postcopy, string? from, string? to)
    {
        string image = EndlessTimerImage();
        string[] bios = ["--bios", "vmm"];
        using MigrationVmm source = MigrationVmm.StartSourceImage(dir, image, bios, memory: "16M", accel: from);
        using MigrationVmm destination = MigrationVmm.StartDestination(dir, memory: "16M", accel: to, extra: bios);
        source.Process.WaitForStdout(s => s.Contains("ticks ok"), MigrationVmm.StartTimeout);
        (uint guestBefore, uint biosBefore) = Counts(source);
        Assert.True(guestBefore >= 10, $"the guest counted {guestBefore} ticks before the migration");

        VmmResult verb = postcopy
            ? PrecopyProcessTests.Verb(source, destination.IncomingUri, "--postcopy", "--postcopy-after", "0", "--destination-monitor", destination.MonitorPath)
            : PrecopyProcessTests.Verb(source, destination.IncomingUri);
        Assert.True(verb.ExitCode == 0, $"migrate exited {verb.ExitCode}; stdout: {verb.Stdout} stderr: {verb.Stderr}");
        Assert.Equal("running", destination.RunStatus());

        (uint guestAfter, uint biosAfter) = Counts(destination);
        Thread.Sleep(TimeSpan.FromSeconds(2));
        (uint guestLater, uint biosLater) = Counts(destination);

        // Continued from the source's count (no reset, no jump: the migration took well under 10 s) ...
        Assert.InRange(guestAfter, guestBefore, guestBefore + (18 * 10));
        Assert.InRange(biosAfter - biosBefore, 0u, 18u * 10);

        // ... and keeps going at the PIT's rate: about 36 in 2 s (generous bounds for a loaded 2-core host).
        Assert.InRange(guestLater - guestAfter, 18u, 60u);
        Assert.InRange(biosLater - biosAfter, 18u, 60u);
        Assert.Equal(guestLater - guestAfter, biosLater - biosAfter, new ToleranceComparer(2));
        Assert.False(destination.Process.Stdout.Contains("timer"), "the guest rebooted on the destination");
    }

    /// <summary>The guest's own int 1Ch count (dword at 0x6000) and the BIOS tick count (0040:006C), via pmemsave.</summary>
    private (uint Guest, uint Bios) Counts(MigrationVmm vmm)
    {
        using QmpTestClient client = vmm.Connect();
        string file = Path.Combine(dir, $"{vmm.Name}-counts.bin");
        client.Return("pmemsave", new { val = 0x400, size = 0x6000, filename = file });
        byte[] memory = File.ReadAllBytes(file);
        File.Delete(file);
        return (BinaryPrimitives.ReadUInt32LittleEndian(memory.AsSpan(0x6000 - 0x400)), BinaryPrimitives.ReadUInt32LittleEndian(memory.AsSpan(0x6C)));
    }

    /// <summary>bios-timer with its "forever" byte set (the byte after the "ticks BAD\r\n\0" message).</summary>
    private string EndlessTimerImage()
    {
        string assembled = NasmBootSectorTests.Assemble("bios-timer");
        byte[] bytes = File.ReadAllBytes(assembled);
        File.Delete(assembled);
        int message = bytes.AsSpan().IndexOf("ticks BAD\r\n\0"u8);
        Assert.True(message > 0);
        bytes[message + 12] = 1;
        string image = Path.Combine(dir, "bios-timer-endless.bin");
        File.WriteAllBytes(image, bytes);
        return image;
    }

    private sealed class ToleranceComparer(uint tolerance) : IEqualityComparer<uint>
    {
        public bool Equals(uint x, uint y) => (x > y ? x - y : y - x) <= tolerance;

        public int GetHashCode(uint obj) => 0;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
