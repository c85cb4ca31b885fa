using System.Collections.ObjectModel;

namespace Vmm.Devices;

/// <summary>
/// The x86 port-I/O space (ports 0x0000-0xFFFF): routes every guest <c>in</c>/<c>out</c> to the device
/// registered over that port.
/// </summary>
/// <remarks>
/// <para>
/// Every port-I/O exit of every vCPU comes through <see cref="Read"/> or <see cref="Write"/>, so lookup is a
/// single index into a 64K-entry owner table: no search, no lock, no allocation. Registration is rare; it
/// rebuilds the table under a lock and publishes a new immutable snapshot, so concurrent accesses see either
/// the old or the new layout, never a torn one.
/// </para>
/// <para>
/// An access is routed by its first port, as KVM reports it; a 2-byte access at a device's last port goes to that
/// device with the full span. Unclaimed ports read as all-ones (an empty ISA bus floats high) and swallow writes.
/// </para>
/// </remarks>
public sealed class PortIoBus
{
    private const int PortSpaceSize = 0x10000;

    private readonly Action<ushort>? _onUnclaimedFirstAccess;
    private readonly ulong[]? _reportedUnclaimedPorts;
    private readonly Lock _registrationLock = new();
    private volatile Snapshot _snapshot = Snapshot.Empty;

    /// <param name="onUnclaimedFirstAccess">
    /// Invoked once per distinct unclaimed port, on the first read or write to it, so the VMM can log probes of
    /// missing hardware without flooding the log. Runs on the accessing (vCPU) thread.
    /// </param>
    public PortIoBus(Action<ushort>? onUnclaimedFirstAccess = null)
    {
        _onUnclaimedFirstAccess = onUnclaimedFirstAccess;
        if (onUnclaimedFirstAccess is not null)
        {
            _reportedUnclaimedPorts = new ulong[PortSpaceSize / 64];
        }
    }

    /// <summary>Registered ranges, sorted by base port.</summary>
    public IReadOnlyList<(ushort Base, ushort Length, string Name)> Ranges => _snapshot.Ranges;

    /// <summary>Claims ports [<paramref name="basePort"/>, <paramref name="basePort"/> + <paramref name="length"/>) for <paramref name="device"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="length"/> is 0, the range runs past port 0xFFFF, or the name is empty.</exception>
    /// <exception cref="InvalidOperationException">The range overlaps a registered one; the message names both.</exception>
    public void Register(ushort basePort, ushort length, IPortDevice device, string name)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (length == 0)
        {
            throw new ArgumentException($"Cannot register '{name}' at port 0x{basePort:X4}: length must be at least 1.", nameof(length));
        }

        if (basePort + length > PortSpaceSize)
        {
            throw new ArgumentException(
                $"Cannot register '{name}' at {DescribeRange(basePort, (ulong)basePort + length - 1)}: the port space ends at 0xFFFF.",
                nameof(length));
        }

        lock (_registrationLock)
        {
            var map = _snapshot.Map.WithAdded(basePort, length, device, name, DescribeRange);
            _snapshot = new Snapshot(map);
        }
    }

    /// <summary>Removes every range owned by <paramref name="device"/>. Does nothing if it owns none.</summary>
    public void Unregister(IPortDevice device)
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

    public void Read(ushort port, Span<byte> data)
    {
        var snapshot = _snapshot;
        int owner = snapshot.OwnerByPort[port];
        if (owner == 0)
        {
            data.Fill(0xFF);
            NoteUnclaimedAccess(port);
            return;
        }

        ref readonly var entry = ref snapshot.Map.Entries[owner - 1];
        entry.Device.Read((ushort)(port - entry.Base), data);
    }

    public void Write(ushort port, ReadOnlySpan<byte> data)
    {
        var snapshot = _snapshot;
        int owner = snapshot.OwnerByPort[port];
        if (owner == 0)
        {
            NoteUnclaimedAccess(port);
            return;
        }

        ref readonly var entry = ref snapshot.Map.Entries[owner - 1];
        entry.Device.Write((ushort)(port - entry.Base), data);
    }

    private void NoteUnclaimedAccess(ushort port)
    {
        if (_reportedUnclaimedPorts is null)
        {
            return;
        }

        ref ulong word = ref _reportedUnclaimedPorts[port >> 6];
        ulong bit = 1UL << (port & 63);

        // The plain read keeps repeated probes of the same port off the interlocked path; the Or decides the
        // race when two vCPUs hit a new port at once, so the callback still runs exactly once.
        if ((Volatile.Read(ref word) & bit) != 0 || (Interlocked.Or(ref word, bit) & bit) != 0)
        {
            return;
        }

        _onUnclaimedFirstAccess!(port);
    }

    private static string DescribeRange(ulong first, ulong last) =>
        first == last ? $"port 0x{first:X4}" : $"ports 0x{first:X4}-0x{last:X4}";

    /// <summary>One published layout of the bus; never mutated after construction.</summary>
    private sealed class Snapshot
    {
        public static readonly Snapshot Empty = new(AddressRangeMap<IPortDevice>.Empty);

        public Snapshot(AddressRangeMap<IPortDevice> map)
        {
            Map = map;

            // int rather than ushort: 65536 one-port devices would need 65536 distinct non-zero owner values.
            OwnerByPort = new int[PortSpaceSize];
            var entries = map.Entries;
            var ranges = new (ushort Base, ushort Length, string Name)[entries.Length];
            for (int i = 0; i < entries.Length; i++)
            {
                var entry = entries[i];
                Array.Fill(OwnerByPort, i + 1, (int)entry.Base, (int)entry.Length);
                ranges[i] = ((ushort)entry.Base, (ushort)entry.Length, entry.Name);
            }

            Ranges = new ReadOnlyCollection<(ushort Base, ushort Length, string Name)>(ranges);
        }

        public AddressRangeMap<IPortDevice> Map { get; }

        /// <summary>0 for an unclaimed port, otherwise 1 + the index of the owning entry in <see cref="Map"/>.</summary>
        public int[] OwnerByPort { get; }

        public IReadOnlyList<(ushort Base, ushort Length, string Name)> Ranges { get; }
    }
}
