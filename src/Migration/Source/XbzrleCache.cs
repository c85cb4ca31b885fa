namespace Vmm.Migration.Source;

/// <summary>
/// The source's copy of the bytes last sent for some pages, so that a page sent again can go as a delta against them
/// (<see cref="Stream.XbzrleEncoding"/>). Direct-mapped, as QEMU's XBZRLE cache: a page has exactly one slot (its page
/// index plus a per-block offset, modulo the slot count), and a page that lands on a taken slot replaces its
/// occupant. Memory is bounded by the cache size: a power of two of 4 KiB slots, at most
/// <c>xbzrle-cache-size</c> bytes, plus one 8-byte tag per slot.
/// </summary>
/// <remarks>
/// A slot holds exactly what the destination holds for its page: it is filled from the bytes that went out, never
/// read from guest memory again, and a page sent any other way (a zero page) is forgotten here.
/// </remarks>
internal sealed unsafe class XbzrleCache : IDisposable
{
    public const int PageSize = 4096;

    /// <summary>The smallest cache: one slot.</summary>
    public const ulong MinSize = PageSize;

    /// <summary>The largest cache: one array of slots (.NET arrays stop below 2 GiB).</summary>
    public const ulong MaxSize = 1ul << 30;

    private const long Empty = -1;

    private readonly long[] tags;
    private readonly int slotMask;
    private readonly ulong size;

    /// <summary>The slots: an anonymous mapping of its own, so the first pass, which fills it, takes huge pages.</summary>
    private nint slots;

    /// <param name="size">xbzrle-cache-size in bytes, <see cref="MinSize"/> to <see cref="MaxSize"/>: rounded down to a power of two of pages.</param>
    public XbzrleCache(ulong size)
    {
        if (size is < MinSize or > MaxSize)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"the XBZRLE cache takes {MinSize} to {MaxSize} bytes");
        }

        int count = 1 << (63 - System.Numerics.BitOperations.LeadingZeroCount(size / PageSize));
        slotMask = count - 1;

        // Untouched slots cost no memory. Filling one costs a page fault, and the first pass fills thousands (16 MiB
        // took ~9 ms of faults with 4 KiB pages here): 2 MiB pages make that a few faults. A host without
        // transparent huge pages just faults 4 KiB at a time.
        this.size = (ulong)count * PageSize;
        slots = Linux.Mman.Map(0, this.size, Linux.Mman.PROT_READ | Linux.Mman.PROT_WRITE, Linux.Mman.MAP_PRIVATE | Linux.Mman.MAP_ANONYMOUS);
        try
        {
            Linux.Mman.Advise(slots, this.size, Linux.Mman.MADV_HUGEPAGE);
        }
        catch (Linux.LinuxException)
        {
            // No transparent huge pages: 4 KiB pages it is.
        }

        tags = new long[count];
        tags.AsSpan().Fill(Empty);
    }

    /// <summary>Bytes of page slots (the memory the cache-size bounds).</summary>
    public ulong Size => size;

    public int SlotCount => tags.Length;

    /// <summary>The bytes last sent for this page, or an empty span when the cache does not hold it.</summary>
    public Span<byte> Find(int block, ulong page)
    {
        int slot = SlotOf(block, page);
        return tags[slot] == Tag(block, page) ? Slot(slot, 1) : default;
    }

    /// <summary>Takes this page's slot (evicting whoever held it); the caller fills all of it with the bytes it sends.</summary>
    public Span<byte> Claim(int block, ulong page)
    {
        int slot = SlotOf(block, page);
        tags[slot] = Tag(block, page);
        return Slot(slot, 1);
    }

    /// <summary>The page went some other way (as a zero page): what the slot holds is no longer the destination's.</summary>
    public void Forget(int block, ulong page)
    {
        int slot = SlotOf(block, page);
        if (tags[slot] == Tag(block, page))
        {
            tags[slot] = Empty;
        }
    }

    /// <summary>
    /// Slots <paramref name="first"/> to <paramref name="first"/> + <paramref name="count"/> - 1 as one span: consecutive
    /// pages claimed into consecutive slots go out as one record from here.
    /// </summary>
    public ReadOnlySpan<byte> SlotRange(int first, int count) => Slot(first, count);

    /// <summary>Unmaps the slots; the cache must not be used afterwards.</summary>
    public void Dispose()
    {
        nint mapped = slots;
        slots = 0;
        if (mapped != 0)
        {
            Linux.Mman.Unmap(mapped, size);
        }
    }

    private Span<byte> Slot(int first, int count)
    {
        ObjectDisposedException.ThrowIf(slots == 0, this);
        return new Span<byte>((byte*)slots + ((long)first * PageSize), count * PageSize);
    }

    private static long Tag(int block, ulong page) => ((long)block << 48) | (long)page;

    /// <summary>Consecutive pages of a block take consecutive slots (until the last slot); blocks start at scattered offsets.</summary>
    public int SlotOf(int block, ulong page) => (int)((page + ((ulong)block * 0x9E3779B1ul)) & (ulong)slotMask);
}
