using Vmm.Emulator.Memory;

namespace Vmm.Emulator.Decoding;

/// <summary>
/// Decoded blocks by guest page, and which bytes of each page they were decoded from. A page that holds code is
/// write-protected in <see cref="GuestPhysicalMemory.WritePages"/>, so every write to it comes here first
/// (<see cref="NotifyWrite"/>): a write that touches instruction bytes drops every block of the page (self-modifying
/// code); a write to data that shares the page with code (common in boot sectors) only costs the slow path. Changes
/// the VMM makes to guest memory reach here through <see cref="GuestPhysicalMemory.Forget"/>.
/// </summary>
public sealed class CodeCache(GuestPhysicalMemory memory)
{
    private const int DirectoryBits = 10;
    private const int LeafBits = 32 - GuestPhysicalMemory.PageShift - DirectoryBits;

    private readonly CodePage?[]?[] directory = new CodePage?[]?[1 << DirectoryBits];
    private readonly List<uint> pages = [];

    /// <summary>Bumped whenever blocks are dropped: a chained successor remembered under an older generation is re-checked.</summary>
    public long Generation { get; private set; }

    /// <summary>The block decoded at <paramref name="linear"/>, or null.</summary>
    public Block? Lookup(uint linear) => Page(linear >> GuestPhysicalMemory.PageShift)?.Blocks[linear & GuestPhysicalMemory.PageMask];

    public bool Contains(uint page) => Page(page) is not null;

    /// <summary>Adds a freshly decoded block: its entry, and its bytes in every page they lie in.</summary>
    public void Add(Block block)
    {
        uint first = block.Linear >> GuestPhysicalMemory.PageShift;
        uint last = (block.EndLinear - 1) >> GuestPhysicalMemory.PageShift;
        for (uint page = first; ; page++)
        {
            CodePage codePage = GetOrAdd(page);
            codePage.Touching.Add(block);
            uint pageStart = page << GuestPhysicalMemory.PageShift;
            uint from = Math.Max(block.Linear, pageStart) - pageStart;
            uint to = (uint)Math.Min((ulong)block.EndLinear - pageStart, GuestPhysicalMemory.PageSize);
            codePage.MarkBytes(from, to);
            if (page == last)
            {
                break;
            }
        }

        // A block decoded here before for another CS base or code size is replaced.
        CodePage start = Page(first)!;
        if (start.Blocks[block.Linear & GuestPhysicalMemory.PageMask] is { } replaced)
        {
            replaced.Valid = false;
            for (uint page = first; page <= (replaced.EndLinear - 1) >> GuestPhysicalMemory.PageShift; page++)
            {
                Page(page)?.Touching.Remove(replaced);
            }
        }

        start.Blocks[block.Linear & GuestPhysicalMemory.PageMask] = block;
    }

    /// <summary>
    /// A write of <paramref name="size"/> bytes at <paramref name="linear"/> to a page that holds code. Returns true
    /// when it touched instruction bytes and the page's blocks were dropped.
    /// </summary>
    public bool NotifyWrite(uint linear, int size)
    {
        uint page = linear >> GuestPhysicalMemory.PageShift;
        CodePage? codePage = Page(page);
        if (codePage is null || !codePage.Overlaps(linear & GuestPhysicalMemory.PageMask, size))
        {
            return false;
        }

        Invalidate(page);
        return true;
    }

    /// <summary>Drops every block with bytes in <paramref name="page"/>, and lets writes to it take the fast path again.</summary>
    public void Invalidate(uint page)
    {
        CodePage? codePage = Page(page);
        if (codePage is null)
        {
            return;
        }

        Generation++;
        foreach (Block block in codePage.Touching)
        {
            block.Valid = false;

            // A block that spills into the next page (or starts in the previous one) is listed there too.
            uint first = block.Linear >> GuestPhysicalMemory.PageShift;
            uint last = (block.EndLinear - 1) >> GuestPhysicalMemory.PageShift;
            for (uint other = first; other <= last; other++)
            {
                if (other != page && Page(other) is { } neighbour)
                {
                    neighbour.Touching.Remove(block);
                    if (neighbour.Blocks[block.Linear & GuestPhysicalMemory.PageMask] == block && other == first)
                    {
                        neighbour.Blocks[block.Linear & GuestPhysicalMemory.PageMask] = null;
                    }
                }
            }
        }

        directory[page >> LeafBits]![page & ((1 << LeafBits) - 1)] = null;
        pages.Remove(page);
        memory.UnprotectCode(page);
    }

    public void InvalidateAll()
    {
        Generation++;
        foreach (uint page in pages)
        {
            if (Page(page) is { } codePage)
            {
                foreach (Block block in codePage.Touching)
                {
                    block.Valid = false;
                }

                directory[page >> LeafBits]![page & ((1 << LeafBits) - 1)] = null;
                memory.UnprotectCode(page);
            }
        }

        pages.Clear();
    }

    private CodePage? Page(uint page) => directory[page >> LeafBits]?[page & ((1 << LeafBits) - 1)];

    private CodePage GetOrAdd(uint page)
    {
        CodePage?[] leaf = directory[page >> LeafBits] ??= new CodePage?[1 << LeafBits];
        ref CodePage? slot = ref leaf[page & ((1 << LeafBits) - 1)];
        if (slot is null)
        {
            slot = new CodePage();
            pages.Add(page);
            memory.ProtectCode(page);
        }

        return slot;
    }

    private sealed class CodePage
    {
        private readonly ulong[] codeBytes = new ulong[GuestPhysicalMemory.PageSize / 64];

        /// <summary>Blocks that start in this page, by offset.</summary>
        public Block?[] Blocks { get; } = new Block?[GuestPhysicalMemory.PageSize];

        /// <summary>Every block with bytes in this page (those that start here and those that spill in).</summary>
        public List<Block> Touching { get; } = [];

        public void MarkBytes(uint from, uint to)
        {
            for (uint b = from; b < to; b++)
            {
                codeBytes[b >> 6] |= 1ul << (int)(b & 63);
            }
        }

        public bool Overlaps(uint offset, int size)
        {
            for (uint b = offset; b < offset + (uint)size && b < GuestPhysicalMemory.PageSize; b++)
            {
                if ((codeBytes[b >> 6] & (1ul << (int)(b & 63))) != 0)
                {
                    return true;
                }
            }

            return false;
        }
    }
}
