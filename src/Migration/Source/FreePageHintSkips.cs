using Vmm.Ram;

namespace Vmm.Migration.Source;

/// <summary>
/// The pages an outgoing migration put off because the guest reported them free: one "hint-skipped" bitmap per RAM
/// block, beside the block's migration dirty bitmap.
/// </summary>
/// <remarks>
/// <para>
/// A hint moves a page from the dirty set into the skipped set, but only a page that was still waiting to be sent:
/// a clean page is already valid on the destination and stays out of both. The move is a
/// <see cref="DirtyBitmap.TestAndClear"/> on the dirty bit, so exactly one of the hint (on a vCPU thread) and the
/// sender (on the migration thread, which clears the same bit before it sends) takes a page; the page is either sent
/// or skipped, never both lost. A guest write after the hint sets the page dirty again at the next sync of KVM's
/// dirty log and it is sent as usual; <see cref="ForgetRedirtied"/> then drops its skipped bit.
/// </para>
/// <para>
/// A hint defers a page, it never drops it (the content still matters if the guest reuses the page on the
/// destination, and a free page is still not zero there): before the guest stops for good, <see cref="ReturnToDirty"/>
/// puts every skipped page back into the dirty set, to be sent in one more live pass (precopy) or to join the discard
/// set and the background push (postcopy).
/// </para>
/// </remarks>
internal sealed class FreePageHintSkips
{
    private const ulong PageSize = DirtyBitmap.PageSize;

    private readonly IReadOnlyList<RamBlock> blocks;
    private readonly DirtyBitmap[] skipped;
    private long skippedPages;

    public FreePageHintSkips(IReadOnlyList<RamBlock> blocks)
    {
        this.blocks = blocks;
        skipped = [.. blocks.Select(b => new DirtyBitmap(b.DirtyBitmap.PageCount))];
    }

    /// <summary>Every page a hint took out of the dirty set so far (a page hinted, re-dirtied and hinted again counts twice).</summary>
    public ulong SkippedPages => (ulong)Interlocked.Read(ref skippedPages);

    /// <summary>
    /// A hint for [<paramref name="guestAddress"/>, +<paramref name="length"/>): moves each of its pages that is
    /// waiting to be sent from the dirty set to the skipped set. Returns how many moved.
    /// </summary>
    public ulong Skip(ulong guestAddress, ulong length)
    {
        ulong moved = 0;
        ulong end = guestAddress + length;
        for (int index = 0; index < blocks.Count; index++)
        {
            RamBlock block = blocks[index];
            ulong from = Math.Max(guestAddress, block.GuestBase);
            ulong to = Math.Min(end, block.GuestEnd);
            if (from >= to)
            {
                continue;
            }

            DirtyBitmap dirty = block.DirtyBitmap;
            ulong limit = Math.Min(dirty.PageCount, skipped[index].PageCount);

            // Partial pages at the edges are not free as a whole: only pages entirely inside the range move.
            ulong first = (from - block.GuestBase + PageSize - 1) / PageSize;
            ulong last = Math.Min((to - block.GuestBase) / PageSize, limit);
            for (ulong page = first; page < last; page++)
            {
                // Clear the dirty bit first: if the sender clears it first, the page is being sent and stays out of
                // the skipped set. (A sync and a send slipping in between the two steps only make the page go twice.)
                if (dirty.TestAndClear(page))
                {
                    skipped[index].Set(page);
                    moved++;
                }
            }
        }

        Interlocked.Add(ref skippedPages, (long)moved);
        return moved;
    }

    /// <summary>
    /// After a dirty-log sync: a skipped page the guest wrote again is dirty, so the coming pass sends it and it is
    /// owed no more. (Done per sync, a pass over the bitmap words, rather than per page on the sender's hot path.)
    /// </summary>
    public void ForgetRedirtied()
    {
        for (int index = 0; index < blocks.Count; index++)
        {
            skipped[index].ClearWhereSet(blocks[index].DirtyBitmap);
        }
    }

    /// <summary>
    /// Moves every skipped page back into its block's dirty set; call it once no more hints can arrive. Returns how
    /// many pages moved.
    /// </summary>
    public ulong ReturnToDirty()
    {
        ulong returned = 0;
        for (int index = 0; index < blocks.Count; index++)
        {
            DirtyBitmap dirty = blocks[index].DirtyBitmap;
            DirtyBitmap taken = skipped[index].TakeAll();
            foreach (ulong page in taken.SetPages())
            {
                if (page < dirty.PageCount)
                {
                    dirty.Set(page);
                    returned++;
                }
            }
        }

        return returned;
    }
}
