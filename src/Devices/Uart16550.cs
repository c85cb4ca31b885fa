namespace Vmm.Devices;

/// <summary>
/// A 16550A UART, by default COM1 at 0x3F8: transmit goes to an <see cref="ISerialSink"/>, receive comes from
/// <see cref="EnqueueInput"/>.
/// </summary>
/// <remarks>
/// <para>
/// The model is what polling drivers (BIOS, boot sectors, Linux's 8250 probe) rely on, not a timing simulation:
/// transmission is instantaneous, so the transmitter is always empty (LSR THRE and TEMT always set), and the
/// receive side is a host-side queue of <see cref="InputQueueCapacity"/> bytes rather than a 16-byte FIFO, so
/// typed-ahead or pasted input is not lost. There is no interrupt controller yet: IIR reports what would be
/// pending so drivers that read it see consistent values, but nothing is injected.
/// </para>
/// <para>
/// Registers are 8 bits wide. A wider access is split into byte accesses at consecutive offsets, as on a real
/// ISA bus, so <c>out dx, ax</c> at the base writes THR and then IER.
/// </para>
/// <para>
/// Thread safety: the vCPU thread accesses registers while a stdin reader thread calls <see cref="EnqueueInput"/>;
/// one lock guards all state. The sink is called outside the lock so a slow terminal never stalls input.
/// </para>
/// </remarks>
public sealed class Uart16550 : IPortDevice, IStatefulDevice
{
    public const ushort Com1Base = 0x3F8;
    public const ushort PortCount = 8;

    /// <summary>Bytes of pending input kept; input beyond this is dropped and reported as an overrun (LSR OE).</summary>
    public const int InputQueueCapacity = 64 * 1024;

    public const int StateVersion = 1;

    // Register offsets. Offsets 0 and 1 mean different registers when LCR.DLAB is set.
    private const int ReceiveTransmitOrDivisorLow = 0;
    private const int InterruptEnableOrDivisorHigh = 1;
    private const int InterruptIdentOrFifoControl = 2;
    private const int LineControl = 3;
    private const int ModemControl = 4;
    private const int LineStatus = 5;
    private const int ModemStatus = 6;
    private const int Scratch = 7;

    private const byte IerReceivedDataAvailable = 0x01;
    private const byte IerTransmitterEmpty = 0x02;
    private const byte IerReceiverLineStatus = 0x04;
    private const byte IerModemStatus = 0x08;
    private const byte IerValidBits = 0x0F;

    private const byte IirNoInterruptPending = 0x01;
    private const byte IirModemStatus = 0x00;
    private const byte IirTransmitterEmpty = 0x02;
    private const byte IirReceivedDataAvailable = 0x04;
    private const byte IirReceiverLineStatus = 0x06;
    private const byte IirFifosEnabled = 0xC0;

    private const byte FcrEnableFifos = 0x01;
    private const byte FcrClearReceiveFifo = 0x02;

    // Bits that stick in FCR: enable, DMA mode, trigger level. The clear bits (1, 2) are self-clearing actions.
    private const byte FcrStoredBits = 0xC9;

    private const byte LcrDivisorLatchAccess = 0x80;

    private const byte McrDtr = 0x01;
    private const byte McrRts = 0x02;
    private const byte McrOut1 = 0x04;
    private const byte McrOut2 = 0x08;
    private const byte McrLoopback = 0x10;
    private const byte McrValidBits = 0x1F;

    private const byte LsrDataReady = 0x01;
    private const byte LsrOverrunError = 0x02;
    private const byte LsrTransmitHoldingEmpty = 0x20;
    private const byte LsrTransmitterEmpty = 0x40;

    private const byte MsrDeltaCts = 0x01;
    private const byte MsrDeltaDsr = 0x02;
    private const byte MsrTrailingEdgeRi = 0x04;
    private const byte MsrDeltaDcd = 0x08;
    private const byte MsrCts = 0x10;
    private const byte MsrDsr = 0x20;
    private const byte MsrRi = 0x40;
    private const byte MsrDcd = 0x80;

    // Outside loopback the "cable" is a host terminal that is always there: carrier, DSR and CTS asserted, so
    // drivers that wait for carrier or flow control proceed. RI stays low: nothing is ringing.
    private const byte MsrLinesWithoutLoopback = MsrDcd | MsrDsr | MsrCts;

    // 9600 baud from the 1.8432 MHz clock: a sane value before firmware programs the latch.
    private const ushort ResetDivisor = 12;

    private readonly ISerialSink _sink;
    private readonly Lock _lock = new();
    private readonly byte[] _input = new byte[InputQueueCapacity];
    private int _inputHead;
    private int _inputCount;
    private long _droppedInput;

    private byte _ier;
    private byte _fcr;
    private byte _lcr;
    private byte _mcr;
    private byte _scr;
    private byte _dll = ResetDivisor & 0xFF;
    private byte _dlm = ResetDivisor >> 8;
    private byte _lsrErrors;
    private byte _msrDeltas;

    public Uart16550(ISerialSink sink)
        : this(sink, Com1Base)
    {
    }

    /// <param name="basePort">Where the VMM registers this UART; only used to name the state section.</param>
    public Uart16550(ISerialSink sink, ushort basePort)
    {
        ArgumentNullException.ThrowIfNull(sink);
        _sink = sink;
        SectionName = $"serial@0x{basePort:x}";
    }

    public string SectionName { get; }

    public int SectionVersion => StateVersion;

    /// <summary>
    /// The UART's INTR pin as a PC wires it (IRQ 4 for COM1): high while IIR reports an interrupt and MCR.OUT2 is set
    /// (the board gates the pin with OUT2, which is why every PC driver sets it). Called with each change, outside
    /// the UART's lock, on the thread that caused it (a vCPU or the stdin reader).
    /// </summary>
    public Action<bool>? InterruptLine { get; set; }

    private bool _irqLevel;

    /// <summary>Recomputes the INTR pin; returns the new level when it changed.</summary>
    private bool? UpdateInterruptLocked()
    {
        bool level = (_mcr & McrOut2) != 0 && (InterruptIdentificationLocked() & IirNoInterruptPending) == 0;
        if (level == _irqLevel)
        {
            return null;
        }

        _irqLevel = level;
        return level;
    }

    private void SignalInterrupt(bool? change)
    {
        if (change is { } level)
        {
            InterruptLine?.Invoke(level);
        }
    }

    /// <summary>Bytes received but not yet read by the guest.</summary>
    public int PendingInput
    {
        get
        {
            lock (_lock)
            {
                return _inputCount;
            }
        }
    }

    /// <summary>Total input bytes dropped because the queue was full, for the VMM to report.</summary>
    public long DroppedInput => Interlocked.Read(ref _droppedInput);

    /// <summary>Queues bytes for the guest to read from RBR. Safe to call from any thread.</summary>
    /// <remarks>
    /// Host input is accepted even in loopback mode (where real hardware disconnects the receive pin): dropping a
    /// user's keystrokes because a driver was probing is worse than mixing them into a loopback self-test.
    /// </remarks>
    public void EnqueueInput(ReadOnlySpan<byte> bytes)
    {
        bool? change;
        lock (_lock)
        {
            EnqueueLocked(bytes);
            change = UpdateInterruptLocked();
        }

        SignalInterrupt(change);
    }

    /// <summary>Takes the next received byte, as a read of RBR would (the BIOS's int 16h reads COM1 this way).</summary>
    public bool TryTakeInput(out byte value)
    {
        bool? change;
        lock (_lock)
        {
            if (_inputCount == 0)
            {
                value = 0;
                return false;
            }

            value = DequeueLocked();
            change = UpdateInterruptLocked();
        }

        SignalInterrupt(change);
        return true;
    }

    /// <summary>The next received byte without taking it.</summary>
    public bool TryPeekInput(out byte value)
    {
        lock (_lock)
        {
            value = _inputCount > 0 ? _input[_inputHead] : (byte)0;
            return _inputCount > 0;
        }
    }

    public void Read(ushort offset, Span<byte> data)
    {
        bool? change;
        lock (_lock)
        {
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = ReadRegisterLocked(offset + i);
            }

            change = UpdateInterruptLocked();
        }

        SignalInterrupt(change);
    }

    public void Write(ushort offset, ReadOnlySpan<byte> data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            bool transmit;
            bool? change;
            lock (_lock)
            {
                transmit = WriteRegisterLocked(offset + i, data[i]);
                change = UpdateInterruptLocked();
            }

            SignalInterrupt(change);

            if (transmit)
            {
                _sink.Write(new ReadOnlySpan<byte>(in data[i]));
            }
        }
    }

    public byte[] SaveState()
    {
        var writer = new DeviceStateWriter(16 + PendingInput);
        lock (_lock)
        {
            writer.WriteByte(_ier);
            writer.WriteByte(_fcr);
            writer.WriteByte(_lcr);
            writer.WriteByte(_mcr);
            writer.WriteByte(_scr);
            writer.WriteByte(_dll);
            writer.WriteByte(_dlm);
            writer.WriteByte(_lsrErrors);
            writer.WriteByte(_msrDeltas);
            writer.WriteInt32(_inputCount);

            // The ring may wrap; write the pending bytes oldest first so the payload is independent of ring position.
            int firstPart = Math.Min(_inputCount, InputQueueCapacity - _inputHead);
            writer.WriteBytes(_input.AsSpan(_inputHead, firstPart));
            writer.WriteBytes(_input.AsSpan(0, _inputCount - firstPart));
        }

        return writer.ToArray();
    }

    public void RestoreState(int version, ReadOnlySpan<byte> state)
    {
        DeviceStateReader.RequireVersion(SectionName, StateVersion, version);

        // Parse everything before touching the device, so a bad payload leaves it unchanged.
        var reader = new DeviceStateReader(SectionName, state);
        byte ier = reader.ReadByte();
        byte fcr = reader.ReadByte();
        byte lcr = reader.ReadByte();
        byte mcr = reader.ReadByte();
        byte scr = reader.ReadByte();
        byte dll = reader.ReadByte();
        byte dlm = reader.ReadByte();
        byte lsrErrors = reader.ReadByte();
        byte msrDeltas = reader.ReadByte();
        int pendingCount = reader.ReadInt32();
        if (pendingCount is < 0 or > InputQueueCapacity)
        {
            throw new InvalidDataException(
                $"Device state section '{SectionName}' claims {pendingCount} pending input bytes; the limit is {InputQueueCapacity}.");
        }

        var pending = reader.ReadBytes(pendingCount);
        reader.EnsureFullyRead();

        lock (_lock)
        {
            _ier = (byte)(ier & IerValidBits);
            _fcr = (byte)(fcr & FcrStoredBits);
            _lcr = lcr;
            _mcr = (byte)(mcr & McrValidBits);
            _scr = scr;
            _dll = dll;
            _dlm = dlm;
            _lsrErrors = (byte)(lsrErrors & LsrOverrunError);
            _msrDeltas = (byte)(msrDeltas & 0x0F);
            _inputHead = 0;
            _inputCount = 0;
            EnqueueLocked(pending);

            // The PIC's own section carries the line's level as it saw it: recompute ours without signalling.
            UpdateInterruptLocked();
        }
    }

    private bool DivisorLatchAccess => (_lcr & LcrDivisorLatchAccess) != 0;

    private bool Loopback => (_mcr & McrLoopback) != 0;

    private byte ReadRegisterLocked(int register)
    {
        switch (register)
        {
            case ReceiveTransmitOrDivisorLow:
                return DivisorLatchAccess ? _dll : DequeueLocked();
            case InterruptEnableOrDivisorHigh:
                return DivisorLatchAccess ? _dlm : _ier;
            case InterruptIdentOrFifoControl:
                return InterruptIdentificationLocked();
            case LineControl:
                return _lcr;
            case ModemControl:
                return _mcr;
            case LineStatus:
            {
                byte lsr = (byte)(LsrTransmitHoldingEmpty | LsrTransmitterEmpty | _lsrErrors);
                if (_inputCount > 0)
                {
                    lsr |= LsrDataReady;
                }

                // Error bits report "since you last looked", as on the chip.
                _lsrErrors = 0;
                return lsr;
            }

            case ModemStatus:
            {
                byte msr = (byte)(ModemLinesLocked() | _msrDeltas);
                _msrDeltas = 0;
                return msr;
            }

            case Scratch:
                return _scr;
            default:
                // Only reachable through a wide access running past the last register.
                return 0xFF;
        }
    }

    /// <returns>True if <paramref name="value"/> must be sent to the sink (done by the caller, outside the lock).</returns>
    private bool WriteRegisterLocked(int register, byte value)
    {
        switch (register)
        {
            case ReceiveTransmitOrDivisorLow:
                if (DivisorLatchAccess)
                {
                    _dll = value;
                    return false;
                }

                if (Loopback)
                {
                    EnqueueLocked(new ReadOnlySpan<byte>(in value));
                    return false;
                }

                return true;
            case InterruptEnableOrDivisorHigh:
                if (DivisorLatchAccess)
                {
                    _dlm = value;
                }
                else
                {
                    _ier = (byte)(value & IerValidBits);
                }

                return false;
            case InterruptIdentOrFifoControl:
                if ((value & FcrClearReceiveFifo) != 0)
                {
                    _inputHead = 0;
                    _inputCount = 0;
                }

                // On the chip the other FCR bits only take effect together with the enable bit.
                _fcr = (value & FcrEnableFifos) != 0 ? (byte)(value & FcrStoredBits) : (byte)0;
                return false;
            case LineControl:
                _lcr = value;
                return false;
            case ModemControl:
            {
                byte before = ModemLinesLocked();
                _mcr = (byte)(value & McrValidBits);
                RecordModemLineChangesLocked(before, ModemLinesLocked());
                return false;
            }

            case Scratch:
                _scr = value;
                return false;
            default:
                // LSR and MSR are read-only (their writes are factory-test features); past-the-end bytes go nowhere.
                return false;
        }
    }

    /// <summary>IIR: the highest-priority pending source, as the 16550 would signal it if an interrupt line existed.</summary>
    private byte InterruptIdentificationLocked()
    {
        byte id;
        if ((_ier & IerReceiverLineStatus) != 0 && _lsrErrors != 0)
        {
            id = IirReceiverLineStatus;
        }
        else if ((_ier & IerReceivedDataAvailable) != 0 && _inputCount > 0)
        {
            id = IirReceivedDataAvailable;
        }
        else if ((_ier & IerTransmitterEmpty) != 0)
        {
            // The transmitter is always idle, so with the interrupt enabled it is always asserted; a real 16550
            // reasserts it whenever the transmitter is idle too (Linux's UART_BUG_THRE probe checks exactly this).
            id = IirTransmitterEmpty;
        }
        else if ((_ier & IerModemStatus) != 0 && _msrDeltas != 0)
        {
            id = IirModemStatus;
        }
        else
        {
            id = IirNoInterruptPending;
        }

        return (_fcr & FcrEnableFifos) != 0 ? (byte)(id | IirFifosEnabled) : id;
    }

    /// <summary>The MSR high nibble: modem input lines, wired back from MCR outputs in loopback (8250 spec).</summary>
    private byte ModemLinesLocked()
    {
        if (!Loopback)
        {
            return MsrLinesWithoutLoopback;
        }

        byte lines = 0;
        if ((_mcr & McrRts) != 0)
        {
            lines |= MsrCts;
        }

        if ((_mcr & McrDtr) != 0)
        {
            lines |= MsrDsr;
        }

        if ((_mcr & McrOut1) != 0)
        {
            lines |= MsrRi;
        }

        if ((_mcr & McrOut2) != 0)
        {
            lines |= MsrDcd;
        }

        return lines;
    }

    /// <summary>Sets the MSR delta bits (low nibble) for lines that changed; they clear when MSR is read.</summary>
    private void RecordModemLineChangesLocked(byte before, byte after)
    {
        byte changed = (byte)(before ^ after);
        if ((changed & MsrCts) != 0)
        {
            _msrDeltas |= MsrDeltaCts;
        }

        if ((changed & MsrDsr) != 0)
        {
            _msrDeltas |= MsrDeltaDsr;
        }

        // RI reports only the trailing edge: ringing stopped.
        if ((before & MsrRi) != 0 && (after & MsrRi) == 0)
        {
            _msrDeltas |= MsrTrailingEdgeRi;
        }

        if ((changed & MsrDcd) != 0)
        {
            _msrDeltas |= MsrDeltaDcd;
        }
    }

    private void EnqueueLocked(ReadOnlySpan<byte> bytes)
    {
        int accepted = Math.Min(bytes.Length, InputQueueCapacity - _inputCount);
        int tail = (_inputHead + _inputCount) % InputQueueCapacity;
        int firstPart = Math.Min(accepted, InputQueueCapacity - tail);
        bytes[..firstPart].CopyTo(_input.AsSpan(tail));
        bytes[firstPart..accepted].CopyTo(_input);
        _inputCount += accepted;

        if (accepted < bytes.Length)
        {
            _lsrErrors |= LsrOverrunError;
            Interlocked.Add(ref _droppedInput, bytes.Length - accepted);
        }
    }

    private byte DequeueLocked()
    {
        if (_inputCount == 0)
        {
            return 0;
        }

        byte value = _input[_inputHead];
        _inputHead = (_inputHead + 1) % InputQueueCapacity;
        _inputCount--;
        return value;
    }
}
