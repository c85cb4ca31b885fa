using Vmm.Ram;

namespace Vmm.Accelerator;

/// <summary>
/// The MMIO holes taken out of RAM blocks, and what is left mapped of each block: its used length minus its holes,
/// as contiguous ranges. Both accelerators' memory maps keep one (KVM makes a memslot of each range).
/// </summary>
public sealed class RamHoles
{
    private readonly Dictionary<RamBlock, List<(ulong Offset, ulong Length)>> holes = [];

    /// <summary>Adds a hole; page-aligned, inside the block's maximum length, not overlapping another.</summary>
    public void Add(RamBlock block, ulong offset, ulong length)
    {
        if (length == 0 || offset % DirtyBitmap.PageSize != 0 || length % DirtyBitmap.PageSize != 0 || offset > block.MaxLength || length > block.MaxLength - offset)
        {
            throw new ArgumentException($"hole [0x{offset:x}, +0x{length:x}) must be page-aligned and inside block '{block.Name}'");
        }

        List<(ulong Offset, ulong Length)> list = Of(block);
        if (list.Any(h => offset < h.Offset + h.Length && h.Offset < offset + length))
        {
            throw new ArgumentException($"hole [0x{offset:x}, +0x{length:x}) overlaps an existing hole in block '{block.Name}'");
        }

        list.Add((offset, length));
    }

    /// <summary>Removes the hole that starts at <paramref name="offset"/>.</summary>
    public void Remove(RamBlock block, ulong offset)
    {
        if (!holes.TryGetValue(block, out List<(ulong Offset, ulong Length)>? list) || list.RemoveAll(h => h.Offset == offset) == 0)
        {
            throw new ArgumentException($"block '{block.Name}' has no hole at offset 0x{offset:x}");
        }
    }

    /// <summary>Forgets a block that left the registry.</summary>
    public void Forget(RamBlock block) => holes.Remove(block);

    /// <summary>Whether the byte at <paramref name="offset"/> of the block is in a hole.</summary>
    public bool Contains(RamBlock block, ulong offset) =>
        holes.TryGetValue(block, out List<(ulong Offset, ulong Length)>? list) && list.Any(h => offset >= h.Offset && offset - h.Offset < h.Length);

    /// <summary>The mapped ranges of a block in increasing order: [0, used length) without its holes.</summary>
    public IReadOnlyList<(ulong Offset, ulong Length)> MappedRanges(RamBlock block)
    {
        var ranges = new List<(ulong Offset, ulong Length)>();
        ulong used = block.UsedLength;
        ulong cursor = 0;
        foreach ((ulong holeOffset, ulong holeLength) in Of(block).OrderBy(h => h.Offset))
        {
            if (holeOffset > cursor && cursor < used)
            {
                ranges.Add((cursor, Math.Min(holeOffset, used) - cursor));
            }

            cursor = Math.Max(cursor, holeOffset + holeLength);
            if (cursor >= used)
            {
                break;
            }
        }

        if (cursor < used)
        {
            ranges.Add((cursor, used - cursor));
        }

        return ranges;
    }

    private List<(ulong Offset, ulong Length)> Of(RamBlock block)
    {
        if (!holes.TryGetValue(block, out List<(ulong Offset, ulong Length)>? list))
        {
            list = [];
            holes[block] = list;
        }

        return list;
    }
}
