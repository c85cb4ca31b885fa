using Serilog;
using Vmm.Devices;
using Vmm.Loading;
using Vmm.Machine;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests;

/// <summary>A spinning guest is stopped from another thread and resumed, in the VMM's own process.</summary>
public class PauseResumeTests
{
    private const ulong CounterAddress = 0x6000;

    [Fact]
    public void PausedSpinningGuestMakesNoProgressAndResumesWhereItLeftOff()
    {
        var serial = new CapturingSerialSink();
        using VirtualMachine machine = VirtualMachine.Create(TestAccelerator.Shared, new MachineConfig(), serial, new LoggerConfiguration().CreateLogger(), TextWriter.Null);
        machine.Load(GuestImage.Load(Repo.Guest("spin"), GuestImage.DefaultLoadAddress, machine.Config.MemorySize));
        machine.Start();

        WaitUntil(() => Counter(machine) > 1000, "the spin guest never started counting");
        for (int round = 0; round < 20; round++)
        {
            machine.Pause();
            Assert.True(machine.IsPaused);
            uint atPause = Counter(machine);
            Thread.Sleep(20);
            Assert.Equal(atPause, Counter(machine));

            machine.Resume();
            WaitUntil(() => Counter(machine) != atPause, $"round {round}: the guest did not resume");
        }

        Assert.False(machine.Exited.IsCompleted);
        Assert.Equal("spin\r\n", serial.Text);
    }

    [Fact]
    public void StartPausedRunsNothingUntilResumed()
    {
        using VirtualMachine machine = VirtualMachine.Create(TestAccelerator.Shared, new MachineConfig(), new CapturingSerialSink(), new LoggerConfiguration().CreateLogger(), TextWriter.Null);
        machine.Load(GuestImage.Load(Repo.Guest("hello"), GuestImage.DefaultLoadAddress, machine.Config.MemorySize));
        machine.Start(paused: true);

        Thread.Sleep(100);
        Assert.False(machine.Exited.IsCompleted);
        Assert.Equal(RunState.Paused, machine.RunState);
        machine.Continue();
        Assert.True(machine.Exited.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal(MachineExitKind.PowerOff, machine.Exited.Result.Kind);
    }

    /// <summary>
    /// A migration destination creates its vCPU threads early (they park before their first KVM_RUN); the guest runs
    /// no instruction until the machine starts, and then runs as usual. Prestarting twice is harmless.
    /// </summary>
    [Fact]
    public void PrestartedVcpusRunNothingUntilTheMachineStarts()
    {
        var serial = new CapturingSerialSink();
        using VirtualMachine machine = VirtualMachine.Create(TestAccelerator.Shared, new MachineConfig(), serial, new LoggerConfiguration().CreateLogger(), TextWriter.Null);
        machine.Load(GuestImage.Load(Repo.Guest("spin"), GuestImage.DefaultLoadAddress, machine.Config.MemorySize));
        machine.PrestartVcpus();
        machine.PrestartVcpus();

        Assert.All(machine.Vcpus, v => Assert.NotEqual(0, v.ThreadId));
        Thread.Sleep(100);
        Assert.Equal(0u, Counter(machine));
        Assert.Equal(string.Empty, serial.Text);
        Assert.Equal(RunState.Prelaunch, machine.RunState);
        Assert.Equal(0, machine.Vcpus[0].RunningSince);

        long released = System.Diagnostics.Stopwatch.GetTimestamp();
        machine.Start();
        Assert.True(machine.Vcpus[0].WaitUntilRunning(released, TimeSpan.FromSeconds(10)), "the released vCPU never left its park");
        Assert.True(machine.Vcpus[0].RunningSince > released);
        WaitUntil(() => Counter(machine) > 1000, "the prestarted guest never started counting");
        Assert.Equal(RunState.Running, machine.RunState);
        Assert.Equal("spin\r\n", serial.Text);
    }

    [Fact]
    public void RequestExitStopsARunningGuestFromAnotherThread()
    {
        using VirtualMachine machine = VirtualMachine.Create(TestAccelerator.Shared, new MachineConfig(), new CapturingSerialSink(), new LoggerConfiguration().CreateLogger(), TextWriter.Null);
        machine.Load(GuestImage.Load(Repo.Guest("spin"), GuestImage.DefaultLoadAddress, machine.Config.MemorySize));
        machine.Start();
        WaitUntil(() => Counter(machine) > 0, "the spin guest never started counting");

        machine.RequestExit(MachineExit.Quit());
        Assert.True(machine.Exited.Wait(TimeSpan.FromSeconds(10)));
        WaitUntil(() => machine.Vcpus.All(v => v.HasExited), "the vCPU thread did not leave KVM_RUN");
    }

    private static uint Counter(VirtualMachine machine)
    {
        Span<byte> bytes = stackalloc byte[4];
        machine.Memory.Read(CounterAddress, bytes);
        return BitConverter.ToUInt32(bytes);
    }

    private static void WaitUntil(Func<bool> condition, string failure)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            Thread.Sleep(1);
        }
    }
}

/// <summary>Collects the guest's serial output in memory.</summary>
public sealed class CapturingSerialSink : ISerialSink
{
    private readonly List<byte> bytes = [];

    public string Text
    {
        get
        {
            lock (bytes)
            {
                return System.Text.Encoding.Latin1.GetString(bytes.ToArray());
            }
        }
    }

    public void Write(ReadOnlySpan<byte> data)
    {
        lock (bytes)
        {
            bytes.AddRange(data);
        }
    }
}
