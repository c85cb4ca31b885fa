using Vmm.Devices;

namespace Vmm.Devices.Tests;

/// <summary>Save on one instance, restore into a fresh one, and check the guest cannot tell the difference.</summary>
public sealed class DeviceStateRoundTripTests
{
    [Fact]
    public void Uart_RestoredInstanceBehavesIdentically()
    {
        var original = new Uart16550(new RecordingSerialSink());
        ConfigureEverything(original);
        var state = original.SaveState();

        var restoredSink = new RecordingSerialSink();
        var restored = new Uart16550(restoredSink);
        restored.RestoreState(original.SectionVersion, state);

        Assert.Equal(original.PendingInput, restored.PendingInput);
        Assert.Equal(state, restored.SaveState());
        Assert.Equal(Exercise(original), Exercise(restored));
    }

    [Fact]
    public void Uart_PendingInputSurvives_EvenWhenTheRingHasWrapped()
    {
        var original = new Uart16550(new RecordingSerialSink());
        original.EnqueueInput(new byte[Uart16550.InputQueueCapacity - 2]);
        for (int i = 0; i < Uart16550.InputQueueCapacity - 2; i++)
        {
            Read(original, 0);
        }

        original.EnqueueInput("across the end"u8);

        var restored = new Uart16550(new RecordingSerialSink());
        restored.RestoreState(1, original.SaveState());

        var received = new byte[14];
        for (int i = 0; i < received.Length; i++)
        {
            received[i] = Read(restored, 0);
        }

        Assert.Equal("across the end"u8.ToArray(), received);
        Assert.Equal(0x60, Read(restored, 5));
    }

    [Fact]
    public void Uart_FullQueueSurvives()
    {
        var original = new Uart16550(new RecordingSerialSink());
        var input = Enumerable.Range(0, Uart16550.InputQueueCapacity).Select(i => (byte)(i % 253)).ToArray();
        original.EnqueueInput(input);

        var restored = new Uart16550(new RecordingSerialSink());
        restored.RestoreState(1, original.SaveState());

        Assert.Equal(Uart16550.InputQueueCapacity, restored.PendingInput);
        Assert.Equal(input[0], Read(restored, 0));
        Assert.Equal(input[1], Read(restored, 0));
    }

    [Fact]
    public void Uart_RestoreReplacesWhateverTheTargetHeld()
    {
        var source = new Uart16550(new RecordingSerialSink());
        source.EnqueueInput("new"u8);

        var target = new Uart16550(new RecordingSerialSink());
        target.EnqueueInput("old input"u8);
        target.Write(7, [0x99]);
        target.Write(3, [0x80]);
        target.Write(0, [0x01]);

        target.RestoreState(1, source.SaveState());

        Assert.Equal(3, target.PendingInput);
        Assert.Equal(0x00, Read(target, 7));
        Assert.Equal(0x00, Read(target, 3));
        Assert.Equal((byte)'n', Read(target, 0));
        target.Write(3, [0x80]);
        Assert.Equal(12, Read(target, 0));
    }

    [Fact]
    public void Uart_UnknownVersion_ThrowsNamingSectionAndVersion()
    {
        var uart = new Uart16550(new RecordingSerialSink());
        var state = uart.SaveState();

        var error = Assert.Throws<InvalidDataException>(() => uart.RestoreState(2, state));
        Assert.Contains("serial@0x3f8", error.Message);
        Assert.Contains("version 2", error.Message);
        Assert.Throws<InvalidDataException>(() => uart.RestoreState(0, state));
    }

    [Fact]
    public void Uart_EveryTruncation_Throws()
    {
        var original = new Uart16550(new RecordingSerialSink());
        original.EnqueueInput("pending"u8);
        var state = original.SaveState();

        for (int length = 0; length < state.Length; length++)
        {
            var fresh = new Uart16550(new RecordingSerialSink());
            var error = Assert.Throws<InvalidDataException>(() => fresh.RestoreState(1, state.AsSpan(0, length)));
            Assert.Contains("serial@0x3f8", error.Message);
        }
    }

    [Fact]
    public void Uart_TrailingBytes_Throw()
    {
        var state = new Uart16550(new RecordingSerialSink()).SaveState();

        var error = Assert.Throws<InvalidDataException>(
            () => new Uart16550(new RecordingSerialSink()).RestoreState(1, [.. state, 0]));
        Assert.Contains("trailing", error.Message);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(Uart16550.InputQueueCapacity + 1)]
    public void Uart_ImpossiblePendingCount_Throws(int count)
    {
        var state = new Uart16550(new RecordingSerialSink()).SaveState();
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(state.AsSpan(9), count);

        Assert.Throws<InvalidDataException>(() => new Uart16550(new RecordingSerialSink()).RestoreState(1, state));
    }

    [Fact]
    public void Uart_FailedRestore_LeavesTheDeviceUnchanged()
    {
        var uart = new Uart16550(new RecordingSerialSink());
        ConfigureEverything(uart);
        var before = uart.SaveState();

        var other = new Uart16550(new RecordingSerialSink());
        other.EnqueueInput("other"u8);
        var otherState = other.SaveState();

        Assert.Throws<InvalidDataException>(() => uart.RestoreState(1, otherState.AsSpan(0, otherState.Length - 1)));
        Assert.Throws<InvalidDataException>(() => uart.RestoreState(7, otherState));

        Assert.Equal(before, uart.SaveState());
    }

    [Fact]
    public void DebugExit_StateIsAnEmptyVersionOneSection()
    {
        var statuses = new List<int>();
        var original = new DebugExit(_ => { });
        var state = original.SaveState();
        Assert.Empty(state);
        Assert.Equal(1, original.SectionVersion);

        var restored = new DebugExit(statuses.Add);
        restored.RestoreState(original.SectionVersion, state);
        restored.Write(0, [4]);

        Assert.Equal([9], statuses);
    }

    [Fact]
    public void DebugExit_UnknownVersionOrNonEmptyPayload_Throws()
    {
        var device = new DebugExit(_ => { });

        var version = Assert.Throws<InvalidDataException>(() => device.RestoreState(2, []));
        Assert.Contains("isa-debug-exit@0xf4", version.Message);
        Assert.Contains("version 2", version.Message);
        var length = Assert.Throws<InvalidDataException>(() => device.RestoreState(1, [0]));
        Assert.Contains("isa-debug-exit@0xf4", length.Message);
    }

    [Fact]
    public void EveryDevice_IsAStatefulDeviceWithAUniqueSectionName()
    {
        IStatefulDevice[] devices =
        [
            new Uart16550(new RecordingSerialSink()),
            new Uart16550(new RecordingSerialSink(), 0x2F8),
            new DebugExit(_ => { }),
            new FreePageHintDevice((_, _) => true),
        ];

        Assert.Equal(devices.Length, devices.Select(d => d.SectionName).Distinct().Count());
    }

    /// <summary>Puts every piece of UART state into a non-reset value.</summary>
    private static void ConfigureEverything(Uart16550 uart)
    {
        uart.Write(3, [0x80]); // DLAB
        uart.Write(0, [0x01]); // DLL: 115200 baud
        uart.Write(1, [0x02]); // DLM
        uart.Write(3, [0x1B]); // 8E1 plus break-free parity bits, DLAB off
        uart.Write(1, [0x0D]); // IER: RDA, RLS, MSI
        uart.Write(2, [0xC1]); // FIFOs on, trigger 14
        uart.Write(7, [0x5A]); // scratch
        uart.Write(4, [0x1A]); // loopback + OUT2 + RTS: sets MSR deltas
        uart.Write(0, [0xEE]); // loopback byte joins the input
        uart.EnqueueInput("pending input \x01\xFF"u8);
        uart.EnqueueInput(new byte[Uart16550.InputQueueCapacity]); // overflow: sets LSR OE
    }

    /// <summary>A fixed script of guest accesses; two devices in the same state must produce the same trace.</summary>
    private static byte[] Exercise(Uart16550 uart)
    {
        var trace = new List<byte>();
        for (ushort register = 1; register < 8; register++)
        {
            trace.Add(Read(uart, register));
        }

        for (ushort register = 2; register < 7; register++)
        {
            trace.Add(Read(uart, register)); // second read: LSR OE and MSR deltas are gone
        }

        uart.Write(3, [0x9B]);
        trace.Add(Read(uart, 0));
        trace.Add(Read(uart, 1));
        uart.Write(3, [0x1B]);
        for (int i = 0; i < 20; i++)
        {
            trace.Add(Read(uart, 0));
        }

        trace.AddRange(BitConverter.GetBytes(uart.PendingInput));
        uart.Write(4, [0x00]);
        trace.Add(Read(uart, 6));
        return [.. trace];
    }

    private static byte Read(Uart16550 uart, ushort register)
    {
        Span<byte> data = stackalloc byte[1];
        uart.Read(register, data);
        return data[0];
    }
}
