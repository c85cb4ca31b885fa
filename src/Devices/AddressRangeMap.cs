namespace Vmm.Devices;

/// <summary>
/// An immutable, sorted set of non-overlapping address ranges, each owned by one device.
/// </summary>
/// <remarks>
/// Both buses keep one of these as a copy-on-write snapshot: registration (rare) builds a new map
/// under a lock and publishes it, and the per-exit lookup (hot) reads whichever map is current
/// without locking or allocating. Addresses are <see cref="ulong"/> so the same code serves ports and MMIO.
/// </remarks>
internal sealed class AddressRangeMap<TDevice> where TDevice : class
{
    /// <summary>One registered window. <see cref="Last"/> is inclusive so a range may end at <see cref="ulong.MaxValue"/>.</summary>
    internal readonly struct Entry(ulong @base, ulong length, TDevice device, string name)
    {
        public readonly ulong Base = @base;
        public readonly ulong Length = length;
        public readonly TDevice Device = device;
        public readonly string Name = name;

        public ulong Last => Base + (Length - 1);
    }

    public static readonly AddressRangeMap<TDevice> Empty = new([]);

    private readonly Entry[] _entries;

    private AddressRangeMap(Entry[] entries) => _entries = entries;

    /// <summary>Entries sorted by <see cref="Entry.Base"/>.</summary>
    public ReadOnlySpan<Entry> Entries => _entries;

    /// <summary>
    /// Returns a new map that also contains [<paramref name="base"/>, <paramref name="base"/> + <paramref name="length"/>).
    /// </summary>
    /// <param name="describe">Formats an inclusive range for messages, e.g. "ports 0x03F8-0x03FF".</param>
    /// <exception cref="InvalidOperationException">The range overlaps an existing one; the message names both.</exception>
    public AddressRangeMap<TDevice> WithAdded(ulong @base, ulong length, TDevice device, string name, Func<ulong, ulong, string> describe)
    {
        var added = new Entry(@base, length, device, name);
        int insertAt = FirstIndexWithBaseAbove(@base);

        // Entries are sorted and disjoint, so only the immediate neighbours can overlap the new range:
        // anything further left ends before the predecessor starts, anything further right starts after the successor.
        if (insertAt > 0 && _entries[insertAt - 1].Last >= @base)
        {
            throw Overlap(added, _entries[insertAt - 1], describe);
        }

        if (insertAt < _entries.Length && _entries[insertAt].Base <= added.Last)
        {
            throw Overlap(added, _entries[insertAt], describe);
        }

        var entries = new Entry[_entries.Length + 1];
        Array.Copy(_entries, 0, entries, 0, insertAt);
        entries[insertAt] = added;
        Array.Copy(_entries, insertAt, entries, insertAt + 1, _entries.Length - insertAt);
        return new AddressRangeMap<TDevice>(entries);
    }

    /// <summary>Returns a map without any range owned by <paramref name="device"/> (compared by reference).</summary>
    public AddressRangeMap<TDevice> WithoutDevice(TDevice device)
    {
        var kept = Array.FindAll(_entries, e => !ReferenceEquals(e.Device, device));
        return kept.Length == _entries.Length ? this : new AddressRangeMap<TDevice>(kept);
    }

    /// <summary>Index of the entry containing <paramref name="address"/>, or -1 when the address is unclaimed.</summary>
    public int IndexOf(ulong address)
    {
        int candidate = FirstIndexWithBaseAbove(address) - 1;
        if (candidate < 0)
        {
            return -1;
        }

        // Subtracting first avoids overflow for ranges that end at the top of the address space.
        ref readonly Entry entry = ref _entries[candidate];
        return address - entry.Base < entry.Length ? candidate : -1;
    }

    private int FirstIndexWithBaseAbove(ulong address)
    {
        int low = 0;
        int high = _entries.Length;
        while (low < high)
        {
            int middle = low + ((high - low) >> 1);
            if (_entries[middle].Base <= address)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return low;
    }

    private static InvalidOperationException Overlap(in Entry added, in Entry existing, Func<ulong, ulong, string> describe) =>
        new($"Cannot register '{added.Name}' at {describe(added.Base, added.Last)}: " +
            $"it overlaps '{existing.Name}' at {describe(existing.Base, existing.Last)}.");
}
