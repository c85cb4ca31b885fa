using Serilog;
using Vmm.Loading;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Stream;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// The warm-up that keeps compilation out of a cold process's downtime: it compiles what it is given (P/Invokes,
/// nested types and generic definitions included, without throwing), reports how it went, and rehearsing the state
/// transfer leaves a running guest alone.
/// </summary>
public sealed class JitWarmUpTests
{
    [Fact]
    public void PreparesInteropGenericAndNestedTypes()
    {
        JitWarmUp.Prepare(typeof(VcpuStateSection), typeof(Linux.Ioctl), typeof(Linux.Signals), typeof(Crc32C), typeof(RecordWriter), typeof(Dictionary<,>));
    }

    [Fact]
    public void ReportsCompletionAndFailure()
    {
        var reports = new System.Collections.Concurrent.BlockingCollection<string>();
        JitWarmUp.InBackground(() => JitWarmUp.Prepare(typeof(Crc32C)), reports.Add);
        JitWarmUp.InBackground(() => throw new InvalidOperationException("boom"), reports.Add);

        string[] seen = [.. Enumerable.Range(0, 2).Select(_ => reports.TryTake(out string? r, TimeSpan.FromSeconds(30)) ? r : "nothing")];
        Assert.Contains(seen, r => r.StartsWith("warmed up for the migration in ", StringComparison.Ordinal));
        Assert.Contains("warming up for the migration failed: InvalidOperationException: boom", seen);
    }

    [Fact]
    public void RehearsingTheStateTransferLeavesARunningGuestAlone()
    {
        var serial = new CapturingSerialSink();
        using VirtualMachine machine = VirtualMachine.Create(TestAccelerator.Shared, new MachineConfig(), serial, new LoggerConfiguration().CreateLogger(), TextWriter.Null);
        machine.Load(GuestImage.Load(Repo.Guest("echo"), GuestImage.DefaultLoadAddress, machine.Config.MemorySize));
        machine.Start();
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while (!serial.Text.Contains("ready"))
        {
            Assert.True(DateTime.UtcNow < deadline, "the echo guest never said it was ready");
            Thread.Sleep(2);
        }

        var reports = new System.Collections.Concurrent.BlockingCollection<string>();
        var migratable = new MigratableMachine(machine);
        byte[] serialBefore = machine.Serial.SaveState();
        migratable.PrepareStateTransfer(reports.Add);
        Assert.True(reports.TryTake(out string? report, TimeSpan.FromSeconds(60)), "the warm-up never reported");
        Assert.StartsWith("warmed up for the migration in ", report);

        Assert.Equal(RunState.Running, machine.RunState);
        Assert.False(machine.Exited.IsCompleted);
        Assert.Equal(serialBefore, machine.Serial.SaveState());
    }
}
