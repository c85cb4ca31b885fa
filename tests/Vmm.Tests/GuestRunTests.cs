using Vmm.Tests.Infrastructure;

namespace Vmm.Tests;

/// <summary>Each guest in guests/ booted through the real `dotnet vmm run`, on the accelerator of the test pass.</summary>
public class GuestRunTests
{
    [Fact]
    public void HelloGreetsOnStdoutAndPowersOffWithStatusZero()
    {
        VmmResult result = VmmProcess.Run("run", Repo.Guest("hello"));

        Assert.Equal("Hello from vmm!\r\n", result.Stdout);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(string.Empty, result.Stderr);
    }

    [Fact]
    public void MemtestPassesOver256MiBAndReportsThroughDebugExit()
    {

        // On this nested host KVM emulates real-mode code (~0.3 us per rep iteration): 256 MiB takes about 85 s alone.
        VmmResult result = VmmProcess.Run(["run", Repo.Guest("memtest"), "--memory", "256M"], TimeSpan.FromSeconds(400));

        Assert.Contains("memtest: testing 255 MiB above 1 MiB", result.Stdout);
        Assert.Contains("memtest: PASS", result.Stdout);
        Assert.Equal((0x10 << 1) | 1, result.ExitCode);
    }

    [Fact]
    public void DirtyPrintsAThenOneBPerPassUntilKilled()
    {
        using VmmProcess vmm = VmmProcess.Start("run", Repo.Guest("dirty"), "--memory", "32M");
        string output = vmm.WaitForStdout(text => text.Count(c => c == 'B') >= 5, TimeSpan.FromSeconds(60));

        Assert.StartsWith("AB", output);
        Assert.Matches("^AB+$", output);
        Assert.False(vmm.HasExited);
    }

    [Fact]
    public void IrqRateProgramsThePicAndPitItselfAndCountsTimerInterrupts()
    {
        // The interrupt-rate benchmark's guest, on the bare machine: an "I" every 1000 IRQ 0s it handled.
        using VmmProcess vmm = VmmProcess.Start("run", Repo.Guest("irq-rate"), "--bios", "none");
        string output = vmm.WaitForStdout(text => text.Count(c => c == 'I') >= 5, TimeSpan.FromSeconds(60));

        Assert.Matches("^irq-rate\r\nI+$", output);
        Assert.False(vmm.HasExited);
    }

    [Fact]
    public void EchoReturnsWhatStdinSendsAndHaltsOnEndOfTransmission()
    {
        VmmResult result = VmmProcess.Run(["run", Repo.Guest("echo")], TimeSpan.FromSeconds(60), stdin: "ping 123\n\u0004");

        Assert.Equal("echo: ready\r\nping 123\n", result.Stdout);
        Assert.Equal(0, result.ExitCode);
    }

    [Fact]
    public void TripleFaultExitsNonZeroWithRegistersAndDisassembly()
    {
        VmmResult result = VmmProcess.Run("run", Repo.Guest("triple-fault"));

        Assert.Equal("triple-fault: going down\r\n", result.Stdout);
        Assert.Equal(6, result.ExitCode);
        Assert.Contains("triple fault", result.Stderr);
        Assert.Matches(@"EIP=[0-9a-f]{8}", result.Stderr);
        Assert.Matches(@"CS =[0-9a-f]{4} base=", result.Stderr);
        Assert.Matches(@"code at [0-9a-f]{4}:[0-9a-f]{4}", result.Stderr);
        Assert.Contains("  ", result.Stderr);
    }

    [Fact]
    public void LoadAddressAboveSixtyFourKiBRunsPositionIndependentCode()
    {

        // mov al, 0x2a ; out 0xf4, al  — runs anywhere, exits with (0x2a << 1) | 1.
        string image = Path.Combine(Path.GetTempPath(), $"vmm-pic-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(image, [0xB0, 0x2A, 0xE6, 0xF4]);
        try
        {
            VmmResult result = VmmProcess.Run("run", image, "--load-address", "0x23450");
            Assert.Equal((0x2A << 1) | 1, result.ExitCode);
        }
        finally
        {
            File.Delete(image);
        }
    }
}
