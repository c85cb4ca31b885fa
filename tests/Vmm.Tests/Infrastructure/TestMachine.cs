using Serilog;
using Vmm.Loading;
using Vmm.Machine;
using Vmm.Ram;

namespace Vmm.Tests.Infrastructure;

/// <summary>A VirtualMachine in the test process, with its serial output captured and memory helpers.</summary>
public sealed class TestMachine : IDisposable
{
    private TestMachine(VirtualMachine machine, CapturingSerialSink serial)
    {
        Machine = machine;
        Serial = serial;
    }

    public VirtualMachine Machine { get; }

    public CapturingSerialSink Serial { get; }

    public static TestMachine Create(
        ulong memory = 16 << 20,
        RamBackend backend = RamBackend.Anonymous,
        string? guest = null,
        params (string Name, ulong Gpa, ulong Size, ulong Max)[] extraBlocks)
    {
        var serial = new CapturingSerialSink();
        Configuration.RamBlockOption[] extra = [.. extraBlocks.Select(e => new Configuration.RamBlockOption(e.Name, e.Gpa, e.Size, e.Max, backend))];
        var machine = VirtualMachine.Create(
            TestAccelerator.Shared,
            new MachineConfig { MemorySize = memory, RamBackend = backend, RamBlocks = extra },
            serial,
            new LoggerConfiguration().MinimumLevel.Warning().WriteTo.Console(standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose).CreateLogger(),
            TextWriter.Null);
        if (guest is not null)
        {
            machine.Load(GuestImage.Load(Repo.Guest(guest), GuestImage.DefaultLoadAddress, memory));
        }

        return new TestMachine(machine, serial);
    }

    public byte ReadByte(ulong address)
    {
        Span<byte> b = stackalloc byte[1];
        Assert.Equal(1, Machine.Memory.Read(address, b));
        return b[0];
    }

    public uint ReadUInt32(ulong address)
    {
        Span<byte> b = stackalloc byte[4];
        Assert.Equal(4, Machine.Memory.Read(address, b));
        return BitConverter.ToUInt32(b);
    }

    /// <summary>Waits until the serial output satisfies <paramref name="condition"/>.</summary>
    public void WaitForSerial(Func<string, bool> condition, string what, int seconds = 60)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition(Serial.Text))
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}; serial so far: {Tail(Serial.Text)}");

            // Only read Exited.Result once it has completed: Result blocks on a running machine.
            if (Machine.Exited.IsCompleted && !condition(Serial.Text))
            {
                Assert.Fail($"the guest stopped ({Machine.Exited.Result.Detail}) while waiting for {what}");
            }

            Thread.Sleep(2);
        }
    }

    public int CountB() => Serial.Text.Count(c => c == 'B');

    /// <summary>Stops the guest and checks the dirty guest's pages in [1 MiB, 1 MiB + length).</summary>
    public string? CheckDirtyConsistency(ulong length)
    {
        Machine.Pause();
        byte[] firsts = DirtyConsistency.FirstBytes(ReadByte, 1 << 20, length);
        return DirtyConsistency.Check(firsts) is { } problem ? problem : firsts[0] == 0 && firsts[^1] == 0 ? "the guest never dirtied anything" : null;
    }

    private static string Tail(string text) => text.Length > 200 ? "…" + text[^200..] : text;

    public void Dispose() => Machine.Dispose();
}
