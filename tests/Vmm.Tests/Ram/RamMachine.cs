using Serilog;
using Vmm.Configuration;
using Vmm.Loading;
using Vmm.Machine;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Ram;

/// <summary>
/// A <see cref="VirtualMachine"/> in the test process built from a full <see cref="MachineConfig"/> (backend, extra
/// blocks), with its serial captured and helpers to read pages of a block and wait for lines of output.
/// </summary>
internal sealed class RamMachine : IDisposable
{
    public const ulong Page = DirtyBitmap.PageSize;

    private RamMachine(VirtualMachine machine, CapturingSerialSink serial)
    {
        Machine = machine;
        Serial = serial;
    }

    public VirtualMachine Machine { get; }

    public CapturingSerialSink Serial { get; }

    public RamBlock PcRam => Block(VirtualMachine.MainRamBlockName);

    public static RamMachine Create(string guest, RamBackend backend, ulong memory, params RamBlockOption[] extraBlocks)
    {
        var serial = new CapturingSerialSink();
        var machine = VirtualMachine.Create(
            TestAccelerator.Shared,
            new MachineConfig { MemorySize = memory, RamBackend = backend, RamBlocks = extraBlocks },
            serial,
            new LoggerConfiguration().MinimumLevel.Warning().WriteTo.Console(standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose).CreateLogger(),
            TextWriter.Null);
        try
        {
            machine.Load(GuestImage.Load(Repo.Guest(guest), GuestImage.DefaultLoadAddress, memory));
        }
        catch
        {
            machine.Dispose();
            throw;
        }

        return new RamMachine(machine, serial);
    }

    public RamBlock Block(string name) => Machine.Ram.FindByName(name) ?? throw new InvalidOperationException($"no block {name}");

    /// <summary>The first byte of every 4 KiB page of [offset, offset + length) of a block, read by the host.</summary>
    public static byte[] FirstBytes(RamBlock block, ulong offset, ulong length)
    {
        byte[] bytes = new byte[length / Page];
        for (int i = 0; i < bytes.Length; i++)
        {
            bytes[i] = block.GetSpan(offset + ((ulong)i * Page), 1)[0];
        }

        return bytes;
    }

    public static bool IsZero(RamBlock block, ulong offset, ulong length)
    {
        for (ulong done = 0; done < length; done += 1 << 20)
        {
            if (block.GetSpan(offset + done, (int)Math.Min(1ul << 20, length - done)).ContainsAnyExcept((byte)0))
            {
                return false;
            }
        }

        return true;
    }

    public int CountB() => Serial.Text.Count(c => c == 'B');

    /// <summary>Waits (bounded) until the serial output satisfies <paramref name="condition"/>.</summary>
    public string WaitForSerial(Func<string, bool> condition, string what, int seconds = 60)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            string text = Serial.Text;
            if (condition(text))
            {
                return text;
            }

            // Exited.Result only once completed: on a running machine it would block forever.
            if (Machine.Exited.IsCompleted)
            {
                Assert.Fail($"the guest stopped ({Machine.Exited.Result.Detail}) while waiting for {what}; serial: {Tail(text)}");
            }

            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"timed out after {seconds} s waiting for {what}; serial so far: {Tail(text)}");
            }

            Thread.Sleep(3);
        }
    }

    /// <summary>Waits for <paramref name="count"/> more 'B's (dirty guest passes) than there are now.</summary>
    public void WaitForMorePasses(int count, string what)
    {
        int target = CountB() + count;
        WaitForSerial(text => text.Count(c => c == 'B') >= target, what);
    }

    /// <summary>The complete lines (without CR LF) written since <paramref name="mark"/> (a length of <see cref="CapturingSerialSink.Text"/>).</summary>
    public static string[] LinesSince(string text, int mark)
    {
        string tail = text[mark..];
        int end = tail.LastIndexOf("\r\n", StringComparison.Ordinal);
        return end < 0 ? [] : tail[..end].Split("\r\n");
    }

    public static string Tail(string text) => text.Length > 300 ? "…" + text[^300..].Replace("\r\n", " | ") : text.Replace("\r\n", " | ");

    public void Dispose() => Machine.Dispose();
}
