using Vmm.Ram;

namespace Vmm.Accelerator;

/// <summary>
/// The ranges of RAM blocks the guest may read and execute but not write: a ROM (the BIOS at the top of the first
/// megabyte). The host still writes them through the block's own mapping (installing the ROM, a reset, an incoming
/// migration); the guest's stores are dropped, as a ROM drops them. Both accelerators' memory maps keep one: KVM makes
/// each range its own memslot with KVM_MEM_READONLY, the software CPU leaves its pages out of the write table.
/// </summary>
public sealed class RamReadOnlyRanges
{
    private readonly Dictionary<RamBlock, List<(ulong Offset, ulong Length)>> ranges = [];

    /// <summary>Adds a range; page-aligned, inside the block's maximum length, not overlapping another.</summary>
    public void Add(RamBlock block, ulong offset, ulong length)
    {
        if (length == 0 || offset % DirtyBitmap.PageSize != 0 || length % DirtyBitmap.PageSize != 0 || offset > block.MaxLength || length > block.MaxLength - offset)
        {
            throw new ArgumentException($"read-only range [0x{offset:x}, +0x{length:x}) must be page-aligned and inside block '{block.Name}'");
        }

        if (!ranges.TryGetValue(block, out List<(ulong Offset, ulong Length)>? list))
        {
            list = [];
            ranges[block] = list;
        }

        if (list.Any(r => offset < r.Offset + r.Length && r.Offset < offset + length))
        {
            throw new ArgumentException($"read-only range [0x{offset:x}, +0x{length:x}) overlaps another in block '{block.Name}'");
        }

        list.Add((offset, length));
        list.Sort();
    }

    /// <summary>Forgets a block that left the registry.</summary>
    public void Forget(RamBlock block) => ranges.Remove(block);

    /// <summary>Whether the byte at <paramref name="offset"/> of the block is read-only to the guest.</summary>
    public bool Contains(RamBlock block, ulong offset) =>
        ranges.TryGetValue(block, out List<(ulong Offset, ulong Length)>? list) && list.Any(r => offset >= r.Offset && offset - r.Offset < r.Length);

    /// <summary>
    /// Cuts [offset, offset+length) of a block at the edges of its read-only ranges: the pieces in increasing order,
    /// each wholly read-only or wholly writable, together exactly the range.
    /// </summary>
    public IReadOnlyList<(ulong Offset, ulong Length, bool ReadOnly)> Split(RamBlock block, ulong offset, ulong length)
    {
        var pieces = new List<(ulong Offset, ulong Length, bool ReadOnly)>();
        ulong end = offset + length;
        ulong cursor = offset;
        if (ranges.TryGetValue(block, out List<(ulong Offset, ulong Length)>? list))
        {
            foreach ((ulong romOffset, ulong romLength) in list)
            {
                ulong from = Math.Max(romOffset, cursor);
                ulong to = Math.Min(romOffset + romLength, end);
                if (from >= to)
                {
                    continue;
                }

                if (from > cursor)
                {
                    pieces.Add((cursor, from - cursor, false));
                }

                pieces.Add((from, to - from, true));
                cursor = to;
            }
        }

        if (cursor < end)
        {
            pieces.Add((cursor, end - cursor, false));
        }

        return pieces;
    }
}
