using Vmm.Tests.Infrastructure;

namespace Vmm.Tests;

/// <summary>`--accel auto|kvm|emulator`: which accelerator runs the guest, what is said about it, and what happens without KVM.</summary>
public sealed class AcceleratorChoiceTests
{
    [Fact]
    public void TheSoftwareCpuRunsAGuestWhereverAsked()
    {
        VmmResult result = VmmProcess.Run("run", Repo.Guest("hello"), "--accel", "emulator");
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}: {result.Stderr}");
        Assert.Contains("Hello from vmm!", result.Stdout);
    }

    [Fact]
    public void AutoSaysWhichAcceleratorItTookAndWhyInOneInfoLine()
    {
        VmmResult result = VmmProcess.Run("run", Repo.Guest("hello"), "--accel", "auto", "--log-level", "info");
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}: {result.Stderr}");
        string line = Assert.Single(result.Stderr.Split('\n'), l => l.Contains("accelerator:", StringComparison.Ordinal));
        string? whyNotKvm = Machine.AcceleratorSelection.ProbeKvm();
        if (whyNotKvm is null)
        {
            Assert.Contains("accelerator: kvm", line);
        }
        else
        {
            Assert.Contains("accelerator: emulator", line);
            Assert.Contains(whyNotKvm, line);
        }
    }

    [Fact]
    public void KvmWhereKvmIsMissingKeepsStatusFour()
    {
        VmmResult result = VmmProcess.Run("run", Repo.Guest("hello"), "--accel", "kvm");
        if (Machine.AcceleratorSelection.ProbeKvm() is { } reason)
        {
            Assert.Equal(4, result.ExitCode);
            Assert.Contains(reason, result.Stderr);
            Assert.Empty(result.Stdout);
        }
        else
        {
            Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}: {result.Stderr}");
            Assert.Contains("Hello from vmm!", result.Stdout);
        }
    }

    [Fact]
    public void AnUnknownAcceleratorIsAUsageError()
    {
        VmmResult result = VmmProcess.Run("run", Repo.Guest("hello"), "--accel", "tcg");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("accel: 'tcg' is not one of auto, kvm, emulator", result.Stderr);
    }
}
