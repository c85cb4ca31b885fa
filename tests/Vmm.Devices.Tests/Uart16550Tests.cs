using Vmm.Devices;

namespace Vmm.Devices.Tests;

public sealed class Uart16550Tests
{
    private const ushort Rbr = 0, Thr = 0, Dll = 0, Ier = 1, Dlm = 1, Iir = 2, Fcr = 2, Lcr = 3, Mcr = 4, Lsr = 5, Msr = 6, Scr = 7;

    private readonly RecordingSerialSink _sink = new();
    private readonly Uart16550 _uart;

    public Uart16550Tests() => _uart = new Uart16550(_sink);

    [Fact]
    public void Constants_DescribeCom1()
    {
        Assert.Equal(0x3F8, Uart16550.Com1Base);
        Assert.Equal(8, Uart16550.PortCount);
    }

    [Fact]
    public void ResetState_ReadsAsAnIdle16550()
    {
        Assert.Equal(0x00, Get(Ier));
        Assert.Equal(0x01, Get(Iir));
        Assert.Equal(0x00, Get(Lcr));
        Assert.Equal(0x00, Get(Mcr));
        Assert.Equal(0x60, Get(Lsr));
        Assert.Equal(0xB0, Get(Msr));
        Assert.Equal(0x00, Get(Scr));
        Assert.Equal(0x00, Get(Rbr));
        Assert.Equal(0, _uart.PendingInput);

        Set(Lcr, 0x80);
        Assert.Equal(12, Get(Dll) | (Get(Dlm) << 8));
    }

    [Fact]
    public void Lsr_ThreAndTemtAreAlwaysSet()
    {
        Assert.Equal(0x60, Get(Lsr) & 0x60);
        for (int i = 0; i < 100; i++)
        {
            Set(Thr, (byte)'x');
            Assert.Equal(0x60, Get(Lsr) & 0x60);
        }

        _uart.EnqueueInput("abc"u8);
        Assert.Equal(0x60, Get(Lsr) & 0x60);
        Set(Mcr, 0x10);
        Set(Thr, 1);
        Assert.Equal(0x60, Get(Lsr) & 0x60);
    }

    [Fact]
    public void Lsr_DataReadyFollowsPendingInput()
    {
        Assert.Equal(0, Get(Lsr) & 0x01);

        _uart.EnqueueInput("hi"u8);
        Assert.Equal(0x61, Get(Lsr));
        Assert.Equal(2, _uart.PendingInput);

        Get(Rbr);
        Assert.Equal(0x61, Get(Lsr));
        Get(Rbr);
        Assert.Equal(0x60, Get(Lsr));
        Assert.Equal(0, _uart.PendingInput);
    }

    [Fact]
    public void Rbr_DequeuesInOrder_ThenReadsZero()
    {
        _uart.EnqueueInput("ab"u8);
        _uart.EnqueueInput("c"u8);

        Assert.Equal((byte)'a', Get(Rbr));
        Assert.Equal((byte)'b', Get(Rbr));
        Assert.Equal((byte)'c', Get(Rbr));
        Assert.Equal(0, Get(Rbr));
        Assert.Equal(0, Get(Rbr));
    }

    [Fact]
    public void Thr_WritesGoStraightToTheSink_OneCallPerByte()
    {
        foreach (byte b in "OK\n"u8)
        {
            Set(Thr, b);
        }

        Assert.Equal("OK\n"u8.ToArray(), _sink.Bytes);
        Assert.Equal(3, _sink.WriteCalls);
        Assert.Equal(0, _uart.PendingInput);
    }

    [Fact]
    public void WideWrite_IsSplitIntoConsecutiveRegisters()
    {
        // out dx, ax at the base port: AL goes to THR, AH to IER.
        _uart.Write(Thr, [(byte)'Z', 0x02]);

        Assert.Equal("Z"u8.ToArray(), _sink.Bytes);
        Assert.Equal(0x02, Get(Ier));
    }

    [Fact]
    public void WideRead_ReadsConsecutiveRegisters_AndPastTheEndReadsFF()
    {
        Set(Lcr, 0x03);
        Set(Scr, 0x42);

        Span<byte> pair = stackalloc byte[2];
        _uart.Read(Lcr, pair);
        Assert.Equal([0x03, 0x00], pair.ToArray());

        _uart.Read(Scr, pair);
        Assert.Equal([0x42, 0xFF], pair.ToArray());
    }

    [Fact]
    public void Dlab_SwitchesOffsetsZeroAndOneToTheDivisorLatch()
    {
        _uart.EnqueueInput("q"u8);
        Set(Ier, 0x05);

        Set(Lcr, 0x83);
        Set(Dll, 0x01);
        Set(Dlm, 0x02);
        Assert.Equal(0x01, Get(Dll));
        Assert.Equal(0x02, Get(Dlm));
        Assert.Empty(_sink.Bytes); // a DLL write is not a transmit
        Assert.Equal(1, _uart.PendingInput); // a DLL read is not a receive

        Set(Lcr, 0x03);
        Assert.Equal(0x05, Get(Ier));
        Assert.Equal((byte)'q', Get(Rbr));
        Set(Thr, (byte)'t');
        Assert.Equal("t"u8.ToArray(), _sink.Bytes);

        Set(Lcr, 0x80);
        Assert.Equal(0x01, Get(Dll));
        Assert.Equal(0x02, Get(Dlm));
    }

    [Fact]
    public void Lcr_RoundTrips()
    {
        foreach (byte value in new byte[] { 0x03, 0x1F, 0x7F, 0x83, 0xFF, 0x00 })
        {
            Set(Lcr, value);
            Assert.Equal(value, Get(Lcr));
        }
    }

    [Fact]
    public void Scr_RoundTripsEveryValue()
    {
        for (int value = 0; value < 256; value++)
        {
            Set(Scr, (byte)value);
            Assert.Equal(value, Get(Scr));
        }
    }

    [Fact]
    public void Ier_KeepsOnlyTheFourDefinedBits()
    {
        Set(Ier, 0xFF);
        Assert.Equal(0x0F, Get(Ier));
    }

    [Fact]
    public void Mcr_KeepsOnlyTheFiveDefinedBits()
    {
        Set(Mcr, 0xFF);
        Assert.Equal(0x1F, Get(Mcr));
    }

    [Fact]
    public void Iir_WithoutFifos_ReportsNoInterruptOrThre()
    {
        Assert.Equal(0x01, Get(Iir));
        Set(Ier, 0x02);
        Assert.Equal(0x02, Get(Iir));
        Assert.Equal(0x02, Get(Iir)); // the transmitter stays idle, so THRE stays asserted
        Set(Ier, 0x00);
        Assert.Equal(0x01, Get(Iir));
    }

    [Fact]
    public void Iir_WithFifos_SetsTheTopBits()
    {
        Set(Fcr, 0x01);
        Assert.Equal(0xC1, Get(Iir));
        Set(Ier, 0x02);
        Assert.Equal(0xC2, Get(Iir));
    }

    [Fact]
    public void Iir_ReceivedDataTakesPriorityOverThre_OnlyWhileDataIsPending()
    {
        Set(Fcr, 0xC7);
        Set(Ier, 0x01);
        Assert.Equal(0xC1, Get(Iir)); // RDA enabled but nothing received

        _uart.EnqueueInput("xy"u8);
        Assert.Equal(0xC4, Get(Iir));

        Set(Ier, 0x03);
        Assert.Equal(0xC4, Get(Iir));
        Get(Rbr);
        Assert.Equal(0xC4, Get(Iir));
        Get(Rbr);
        Assert.Equal(0xC2, Get(Iir));

        Set(Ier, 0x02);
        _uart.EnqueueInput("z"u8);
        Assert.Equal(0xC2, Get(Iir)); // data pending but RDA interrupt not enabled
    }

    [Fact]
    public void Iir_LineStatusAndModemStatusSources()
    {
        Set(Ier, 0x04);
        _uart.EnqueueInput(new byte[Uart16550.InputQueueCapacity + 1]);
        Assert.Equal(0x06, Get(Iir));
        Get(Lsr); // reading LSR clears the overrun
        Assert.Equal(0x01, Get(Iir));

        Set(Ier, 0x08);
        Set(Mcr, 0x10); // entering loopback drops DCD/DSR/CTS: delta bits set
        Assert.Equal(0x00, Get(Iir));
        Get(Msr);
        Assert.Equal(0x01, Get(Iir));
    }

    [Fact]
    public void Fcr_Bit1ClearsTheReceiveQueue()
    {
        _uart.EnqueueInput("stale"u8);
        Set(Fcr, 0x01); // enable only: keeps data
        Assert.Equal(5, _uart.PendingInput);

        Set(Fcr, 0x07);
        Assert.Equal(0, _uart.PendingInput);
        Assert.Equal(0x60, Get(Lsr));
        Assert.Equal(0, Get(Rbr));

        _uart.EnqueueInput("new"u8);
        Assert.Equal((byte)'n', Get(Rbr));
    }

    [Fact]
    public void Fcr_WithoutEnableBit_DisablesFifosButStillClears()
    {
        Set(Fcr, 0xC1);
        Assert.Equal(0xC1, Get(Iir));
        _uart.EnqueueInput("x"u8);

        Set(Fcr, 0x02);

        Assert.Equal(0x01, Get(Iir));
        Assert.Equal(0, _uart.PendingInput);
    }

    [Fact]
    public void Loopback_ThrWritesComeBackOnTheReceiveSide()
    {
        Set(Mcr, 0x10);
        Set(Thr, 0x55);
        Set(Thr, 0xAA);

        Assert.Empty(_sink.Bytes);
        Assert.Equal(2, _uart.PendingInput);
        Assert.Equal(0x61, Get(Lsr));
        Assert.Equal(0x55, Get(Rbr));
        Assert.Equal(0xAA, Get(Rbr));
        Assert.Equal(0x60, Get(Lsr));

        Set(Mcr, 0x00);
        Set(Thr, 0x33);
        Assert.Equal([0x33], _sink.Bytes);
        Assert.Equal(0, _uart.PendingInput);
    }

    [Fact]
    public void Msr_WithoutLoopback_ReportsCarrierDsrAndCtsWhateverMcrSays()
    {
        Assert.Equal(0xB0, Get(Msr));
        Set(Mcr, 0x0F);
        Assert.Equal(0xB0, Get(Msr));
        Set(Mcr, 0x00);
        Assert.Equal(0xB0, Get(Msr));
    }

    [Theory]
    [InlineData(0x10, 0x00)]
    [InlineData(0x11, 0x20)] // DTR -> DSR
    [InlineData(0x12, 0x10)] // RTS -> CTS
    [InlineData(0x14, 0x40)] // OUT1 -> RI
    [InlineData(0x18, 0x80)] // OUT2 -> DCD
    [InlineData(0x1A, 0x90)] // what Linux's 8250 probe writes and expects
    [InlineData(0x1F, 0xF0)]
    public void Msr_InLoopback_HighNibbleMirrorsMcrOutputs(byte mcr, byte expectedLines)
    {
        Set(Mcr, mcr);
        Assert.Equal(expectedLines, Get(Msr) & 0xF0);
        Assert.Equal(expectedLines, Get(Msr)); // deltas were consumed by the first read
    }

    [Fact]
    public void Msr_DeltaBitsReportChangesOnceAndRiOnlyOnItsTrailingEdge()
    {
        Set(Mcr, 0x10); // B0 -> 00: CTS, DSR and DCD all changed
        Assert.Equal(0x0B, Get(Msr));
        Assert.Equal(0x00, Get(Msr));

        Set(Mcr, 0x14); // RI rises: no delta for a leading edge
        Assert.Equal(0x40, Get(Msr));
        Set(Mcr, 0x10); // RI falls: trailing-edge indicator
        Assert.Equal(0x04, Get(Msr));

        Set(Mcr, 0x12); // CTS rises
        Assert.Equal(0x11, Get(Msr));
        Set(Mcr, 0x00); // leaving loopback: DSR and DCD rise, CTS stays
        Assert.Equal(0xBA, Get(Msr)); // DCD|DSR|CTS plus DDCD|DDSR
    }

    [Fact]
    public void LsrAndMsrWrites_AreIgnored()
    {
        Set(Lsr, 0x00);
        Set(Msr, 0x00);
        Assert.Equal(0x60, Get(Lsr));
        Assert.Equal(0xB0, Get(Msr));
    }

    [Fact]
    public void Input_IsBounded_ExcessIsDroppedAndReportedAsOverrun()
    {
        var input = new byte[Uart16550.InputQueueCapacity + 10];
        for (int i = 0; i < input.Length; i++)
        {
            input[i] = (byte)i;
        }

        _uart.EnqueueInput(input.AsSpan(0, 100));
        _uart.EnqueueInput(input.AsSpan(100));

        Assert.Equal(Uart16550.InputQueueCapacity, _uart.PendingInput);
        Assert.Equal(10, _uart.DroppedInput);
        Assert.Equal(0x63, Get(Lsr)); // DR | OE | THRE | TEMT
        Assert.Equal(0x61, Get(Lsr)); // OE clears once read

        for (int i = 0; i < Uart16550.InputQueueCapacity; i++)
        {
            Assert.Equal((byte)i, Get(Rbr));
        }

        Assert.Equal(0x60, Get(Lsr));
    }

    [Fact]
    public void Input_WrapsAroundTheQueueInOrder()
    {
        var first = Enumerable.Range(0, Uart16550.InputQueueCapacity - 3).Select(i => (byte)(i * 7)).ToArray();
        _uart.EnqueueInput(first);
        for (int i = 0; i < first.Length; i++)
        {
            Assert.Equal(first[i], Get(Rbr));
        }

        // The write position is now 3 bytes before the end of the ring: this input wraps.
        _uart.EnqueueInput("wrapped!"u8);
        var received = new byte[8];
        for (int i = 0; i < received.Length; i++)
        {
            received[i] = Get(Rbr);
        }

        Assert.Equal("wrapped!"u8.ToArray(), received);
        Assert.Equal(0, _uart.DroppedInput);
    }

    [Fact]
    public async Task EnqueueInput_FromAnotherThread_ArrivesCompleteAndInOrder()
    {
        const int total = 200_000; // more than the queue holds, so the producer must wait for the guest
        using var giveUp = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var producer = Task.Run(() =>
        {
            var chunk = new byte[1];
            for (int i = 0; i < total && !giveUp.IsCancellationRequested; i++)
            {
                while (_uart.PendingInput >= Uart16550.InputQueueCapacity && !giveUp.IsCancellationRequested)
                {
                    Thread.Yield();
                }

                chunk[0] = (byte)(i % 251);
                _uart.EnqueueInput(chunk);
            }
        });

        int received = 0;
        try
        {
            while (received < total && !giveUp.IsCancellationRequested)
            {
                if ((Get(Lsr) & 0x01) == 0)
                {
                    Thread.Yield();
                    continue;
                }

                Assert.Equal((byte)(received % 251), Get(Rbr));
                received++;
            }
        }
        finally
        {
            // Whatever happened above, never leave the producer spinning on a full queue.
            giveUp.Cancel();
            await producer;
        }

        Assert.Equal(total, received);
        Assert.Equal(0, _uart.DroppedInput);
    }

    [Fact]
    public void Sink_IsCalledWithoutTheDeviceLockHeld()
    {
        var sink = new ProbingSink();
        var uart = new Uart16550(sink);
        sink.Uart = uart;

        uart.Write(Thr, [(byte)'!']);

        Assert.True(sink.OtherThreadGotIn, "another thread could not use the UART while the sink ran");
    }

    [Fact]
    public void SectionName_NamesTheBasePort()
    {
        Assert.Equal("serial@0x3f8", _uart.SectionName);
        Assert.Equal("serial@0x2f8", new Uart16550(_sink, 0x2F8).SectionName);
        Assert.Equal(1, _uart.SectionVersion);
    }

    [Fact]
    public void ThroughThePortBus_Com1RoutesToTheUart()
    {
        var bus = new PortIoBus();
        bus.Register(Uart16550.Com1Base, Uart16550.PortCount, _uart, "com1");
        _uart.EnqueueInput("k"u8);

        bus.Write(0x3F8, "A"u8);
        Span<byte> b = stackalloc byte[1];
        bus.Read(0x3FD, b);
        Assert.Equal(0x61, b[0]);
        bus.Read(0x3F8, b);
        Assert.Equal((byte)'k', b[0]);
        Assert.Equal("A"u8.ToArray(), _sink.Bytes);
    }

    private byte Get(ushort register)
    {
        Span<byte> data = stackalloc byte[1];
        _uart.Read(register, data);
        return data[0];
    }

    private void Set(ushort register, byte value) => _uart.Write(register, [value]);

    /// <summary>While being written to, checks that another thread can take the UART's lock.</summary>
    private sealed class ProbingSink : ISerialSink
    {
        public Uart16550? Uart { get; set; }

        public bool OtherThreadGotIn { get; private set; }

        public void Write(ReadOnlySpan<byte> bytes)
        {
            var uart = Uart!;
            OtherThreadGotIn = Task.Run(() => uart.EnqueueInput("?"u8)).Wait(TimeSpan.FromSeconds(10));
        }
    }
}
