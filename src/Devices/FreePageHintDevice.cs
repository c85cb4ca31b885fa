using System.Buffers.Binary;

namespace Vmm.Devices;

/// <summary>
/// The free-page-hint device (ports 0x5A0–0x5A7): the VMM asks, the guest answers with ranges of RAM it does not
/// use, like virtio-balloon's free page hinting but on two port registers. An outgoing migration uses the answers to
/// put off sending those pages (see docs/migration.md, "Free-page hints").
/// </summary>
/// <remarks>
/// <para>
/// Registers, all 32 bits wide and little-endian:
/// <list type="bullet">
/// <item>offset 0, read: STATUS, a non-zero request id while the VMM wants hints, 0 otherwise. A new request gets a
/// new id, so a guest answers each request once by remembering the last id it answered.</item>
/// <item>offset 0, write: the base guest-physical address of a free range (kept until the next base write).</item>
/// <item>offset 4, write: the range's length in bytes; this write commits the hint (base, length).</item>
/// </list>
/// Only aligned 32-bit accesses at offsets 0 and 4 mean anything. Any other access (a 1- or 2-byte access, or one at
/// offsets 1–3 or 5–7, or a 32-bit read at offset 4) reads all-ones and is dropped when written, so half a base or
/// length can never be committed; it is counted in <see cref="IgnoredAccesses"/>.
/// </para>
/// <para>
/// A committed hint whose base or length is not a multiple of 4 KiB, whose length is 0, or which does not lie inside
/// one RAM block is dropped and counted in <see cref="MalformedHints"/>; a valid hint while no request is open is
/// dropped and counted in <see cref="UnrequestedHints"/>. Both are reported through the debug callback.
/// </para>
/// <para>
/// Thread safety: the vCPU thread commits while the migration thread opens and closes requests; one lock covers the
/// registers, the request and the delivery to the sink, so that when <see cref="EndRequest"/> returns no hint is
/// being delivered to the old sink and none ever will be.
/// </para>
/// </remarks>
public sealed class FreePageHintDevice : IPortDevice, IStatefulDevice
{
    public const ushort DefaultPort = 0x5A0;
    public const ushort PortCount = 8;

    /// <summary>STATUS on read, the base of the free range on write.</summary>
    public const ushort StatusOrBaseOffset = 0;

    /// <summary>The free range's length; a write commits the hint.</summary>
    public const ushort LengthOffset = 4;

    /// <summary>Hints are whole 4 KiB pages: base and length must be multiples of this.</summary>
    public const ulong HintGranularity = 4096;

    public const int StateVersion = 1;

    private const int RegisterWidth = 4;

    private readonly Func<ulong, ulong, bool> _isRam;
    private readonly Action<string>? _debug;
    private readonly Lock _lock = new();
    private IFreePageHintSink? _sink;
    private uint _activeRequestId;
    private uint _lastRequestId;
    private uint _pendingBase;
    private long _acceptedHints;
    private long _malformedHints;
    private long _unrequestedHints;
    private long _ignoredAccesses;

    /// <param name="isRam">Whether [address, +length) lies inside one RAM block (length is non-zero).</param>
    /// <param name="debug">Told about every dropped hint or access, for a debug log.</param>
    /// <param name="port">Where the VMM registers this device; only used to name the state section.</param>
    public FreePageHintDevice(Func<ulong, ulong, bool> isRam, Action<string>? debug = null, ushort port = DefaultPort)
    {
        ArgumentNullException.ThrowIfNull(isRam);
        _isRam = isRam;
        _debug = debug;
        SectionName = $"free-page-hint@0x{port:x}";
    }

    public string SectionName { get; }

    public int SectionVersion => StateVersion;

    /// <summary>What a guest reads from STATUS now: the open request's id, or 0.</summary>
    public uint Status => Volatile.Read(ref _activeRequestId);

    /// <summary>Hints handed to a sink.</summary>
    public long AcceptedHints => Interlocked.Read(ref _acceptedHints);

    /// <summary>Hints dropped as unaligned, empty or outside RAM.</summary>
    public long MalformedHints => Interlocked.Read(ref _malformedHints);

    /// <summary>Valid hints dropped because no request was open.</summary>
    public long UnrequestedHints => Interlocked.Read(ref _unrequestedHints);

    /// <summary>Reads and writes other than aligned 32-bit accesses to a register.</summary>
    public long IgnoredAccesses => Interlocked.Read(ref _ignoredAccesses);

    /// <summary>
    /// Opens a request: STATUS reads a new non-zero id until <see cref="EndRequest"/>, and every valid hint committed
    /// meanwhile goes to <paramref name="sink"/>. Replaces a request still open. Returns the id.
    /// </summary>
    public uint BeginRequest(IFreePageHintSink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        lock (_lock)
        {
            // Ids only grow (and skip 0, which means "nobody asks"): a guest that remembers the id it answered
            // answers every new request, also after a migration, since the last id travels in the device state.
            _lastRequestId = _lastRequestId == uint.MaxValue ? 1 : _lastRequestId + 1;
            _sink = sink;
            Volatile.Write(ref _activeRequestId, _lastRequestId);
            return _lastRequestId;
        }
    }

    /// <summary>
    /// Closes the request <paramref name="requestId"/> (a no-op if another one replaced it): STATUS reads 0 again.
    /// When this returns, no hint is being delivered to its sink and none will be.
    /// </summary>
    public void EndRequest(uint requestId)
    {
        lock (_lock)
        {
            if (requestId != 0 && _activeRequestId == requestId)
            {
                Volatile.Write(ref _activeRequestId, 0);
                _sink = null;
            }
        }
    }

    public void Read(ushort offset, Span<byte> data)
    {
        if (offset == StatusOrBaseOffset && data.Length == RegisterWidth)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(data, Status);
            return;
        }

        data.Fill(0xFF);
        NoteIgnoredAccess("read", offset, data.Length);
    }

    public void Write(ushort offset, ReadOnlySpan<byte> data)
    {
        if (data.Length != RegisterWidth || offset is not (StatusOrBaseOffset or LengthOffset))
        {
            NoteIgnoredAccess("write", offset, data.Length);
            return;
        }

        uint value = BinaryPrimitives.ReadUInt32LittleEndian(data);
        lock (_lock)
        {
            if (offset == StatusOrBaseOffset)
            {
                _pendingBase = value;
                return;
            }

            CommitLocked(_pendingBase, value);
        }
    }

    /// <summary>The last request id (so ids keep growing on the destination) and a base written but not committed.</summary>
    public byte[] SaveState()
    {
        var writer = new DeviceStateWriter(8);
        lock (_lock)
        {
            writer.WriteUInt32(_lastRequestId);
            writer.WriteUInt32(_pendingBase);
        }

        return writer.ToArray();
    }

    /// <summary>An open request is not state: it belongs to the migration on this side and stays as it is.</summary>
    public void RestoreState(int version, ReadOnlySpan<byte> state)
    {
        DeviceStateReader.RequireVersion(SectionName, StateVersion, version);
        var reader = new DeviceStateReader(SectionName, state);
        uint lastRequestId = reader.ReadUInt32();
        uint pendingBase = reader.ReadUInt32();
        reader.EnsureFullyRead();
        lock (_lock)
        {
            _lastRequestId = lastRequestId;
            _pendingBase = pendingBase;
        }
    }

    private void CommitLocked(ulong guestAddress, ulong length)
    {
        string? malformed =
            length == 0 ? "zero length"
            : guestAddress % HintGranularity != 0 || length % HintGranularity != 0 ? "not 4 KiB aligned"
            : !_isRam(guestAddress, length) ? "not inside one RAM block"
            : null;
        if (malformed is not null)
        {
            Interlocked.Increment(ref _malformedHints);
            _debug?.Invoke($"hint [0x{guestAddress:x}, +0x{length:x}) ignored: {malformed}");
            return;
        }

        if (_sink is null)
        {
            Interlocked.Increment(ref _unrequestedHints);
            _debug?.Invoke($"hint [0x{guestAddress:x}, +0x{length:x}) ignored: no migration asked for hints");
            return;
        }

        Interlocked.Increment(ref _acceptedHints);
        _sink.OnFreePageHint(guestAddress, length);
    }

    private void NoteIgnoredAccess(string kind, ushort offset, int width)
    {
        Interlocked.Increment(ref _ignoredAccesses);
        _debug?.Invoke($"{width}-byte {kind} at offset {offset} ignored: only 32-bit accesses at offsets 0 and 4 mean anything");
    }
}
