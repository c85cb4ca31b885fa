using System.Collections.Concurrent;
using System.Collections.ObjectModel;

namespace Vmm.Devices;

/// <summary>
/// The memory-mapped I/O space: routes every guest MMIO exit (an access to guest-physical memory that no RAM
/// memslot backs) to the device registered over that address.
/// </summary>
/// <remarks>
/// <para>
/// Lookup is a binary search over an immutable sorted snapshot: no lock, no allocation. Registration is rare; it
/// builds and publishes a new snapshot under a lock, so concurrent accesses see either the old or the new layout.
/// </para>
/// <para>
/// An access is routed by its first byte. Unclaimed addresses read as all-ones and swallow writes.
/// </para>
/// </remarks>
public sealed class MmioBus
{
    /// <summary>
    /// How many distinct unclaimed addresses are remembered for <c>onUnclaimedFirstAccess</c>. Unlike the port space,
    /// the address space is too large to track exhaustively, and a guest sweeping memory must not grow the VMM without
    /// bound; past this many, further new unclaimed addresses are no longer reported.
    /// </summary>
    public const int MaxReportedUnclaimedAddresses = 4096;

    private readonly Action<ulong>? _onUnclaimedFirstAccess;
    private readonly ConcurrentDictionary<ulong, byte>? _reportedUnclaimedAddresses;
    private readonly Lock _registrationLock = new();
    private int _reportedUnclaimedCount;
    private volatile Snapshot _snapshot = Snapshot.Empty;

    /// <param name="onUnclaimedFirstAccess">
    /// Invoked once per distinct unclaimed address (up to <see cref="MaxReportedUnclaimedAddresses"/>), on the first
    /// read or write to it, so the VMM can log once. Runs on the accessing (vCPU) thread.
    /// </param>
    public MmioBus(Action<ulong>? onUnclaimedFirstAccess = null)
    {
        _onUnclaimedFirstAccess = onUnclaimedFirstAccess;
        if (onUnclaimedFirstAccess is not null)
        {
            _reportedUnclaimedAddresses = new ConcurrentDictionary<ulong, byte>();
        }
    }

    /// <summary>Registered ranges, sorted by base address.</summary>
    public IReadOnlyList<(ulong Base, ulong Length, string Name)> Ranges => _snapshot.Ranges;

    /// <summary>Claims [<paramref name="baseAddress"/>, <paramref name="baseAddress"/> + <paramref name="length"/>) for <paramref name="device"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="length"/> is 0, the range wraps past 2^64, or the name is empty.</exception>
    /// <exception cref="InvalidOperationException">The range overlaps a registered one; the message names both.</exception>
    public void Register(ulong baseAddress, ulong length, IMmioDevice device, string name)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (length == 0)
        {
            throw new ArgumentException($"Cannot register '{name}' at 0x{baseAddress:X}: length must be at least 1.", nameof(length));
        }

        if (length - 1 > ulong.MaxValue - baseAddress)
        {
            throw new ArgumentException(
                $"Cannot register '{name}' at 0x{baseAddress:X} with length 0x{length:X}: the range runs past the end of the address space.",
                nameof(length));
        }

        lock (_registrationLock)
        {
            var map = _snapshot.Map.WithAdded(baseAddress, length, device, name, DescribeRange);
            _snapshot = new Snapshot(map);
        }
    }

    /// <summary>Removes every range owned by <paramref name="device"/>. Does nothing if it owns none.</summary>
    public void Unregister(IMmioDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        lock (_registrationLock)
        {
            var map = _snapshot.Map.WithoutDevice(device);
            if (!ReferenceEquals(map, _snapshot.Map))
            {
                _snapshot = new Snapshot(map);
            }
        }
    }

    public void Read(ulong address, Span<byte> data)
    {
        var map = _snapshot.Map;
        int index = map.IndexOf(address);
        if (index < 0)
        {
            data.Fill(0xFF);
            NoteUnclaimedAccess(address);
            return;
        }

        ref readonly var entry = ref map.Entries[index];
        entry.Device.Read(address - entry.Base, data);
    }

    public void Write(ulong address, ReadOnlySpan<byte> data)
    {
        var map = _snapshot.Map;
        int index = map.IndexOf(address);
        if (index < 0)
        {
            NoteUnclaimedAccess(address);
            return;
        }

        ref readonly var entry = ref map.Entries[index];
        entry.Device.Write(address - entry.Base, data);
    }

    private void NoteUnclaimedAccess(ulong address)
    {
        var reported = _reportedUnclaimedAddresses;

        // The lock-free ContainsKey keeps repeated accesses to a known address cheap; TryAdd settles races so the
        // callback runs exactly once per address. A separate counter, because ConcurrentDictionary.Count takes
        // every bucket lock; it may overshoot the cap by a few under races, which only loosens a memory bound.
        if (reported is null
            || reported.ContainsKey(address)
            || Volatile.Read(ref _reportedUnclaimedCount) >= MaxReportedUnclaimedAddresses
            || !reported.TryAdd(address, 0))
        {
            return;
        }

        Interlocked.Increment(ref _reportedUnclaimedCount);
        _onUnclaimedFirstAccess!(address);
    }

    private static string DescribeRange(ulong first, ulong last) => $"0x{first:X}-0x{last:X}";

    /// <summary>One published layout of the bus; never mutated after construction.</summary>
    private sealed class Snapshot
    {
        public static readonly Snapshot Empty = new(AddressRangeMap<IMmioDevice>.Empty);

        public Snapshot(AddressRangeMap<IMmioDevice> map)
        {
            Map = map;
            var entries = map.Entries;
            var ranges = new (ulong Base, ulong Length, string Name)[entries.Length];
            for (int i = 0; i < entries.Length; i++)
            {
                ranges[i] = (entries[i].Base, entries[i].Length, entries[i].Name);
            }

            Ranges = new ReadOnlyCollection<(ulong Base, ulong Length, string Name)>(ranges);
        }

        public AddressRangeMap<IMmioDevice> Map { get; }

        public IReadOnlyList<(ulong Base, ulong Length, string Name)> Ranges { get; }
    }
}
