using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Migration.Source;

/// <summary>
/// Postcopy recovery, on the source: collects the destination's received bitmaps (<see cref="ReceivedBitmapRecord"/>)
/// and checks them against this side's layout before any of it is believed — every block, in order, each stretch
/// starting where the last ended, exactly the block's host pages, nothing more. Only a complete, consistent set is
/// applied (<see cref="ApplyToDirty"/>): the dirty bitmaps become "everything not received there".
/// </summary>
public sealed class ReceivedBitmapAssembler(IReadOnlyList<RamBlock> blocks)
{
    private readonly DirtyBitmap[] received = [.. blocks.Select(b => new DirtyBitmap(Math.Max(1, b.UsedLength / b.PageSize)))];
    private int block;
    private ulong nextPage;

    /// <summary>Takes one stretch; a stretch out of order or outside the layout is a protocol error.</summary>
    public void Add(int blockIndex, ulong firstPage, uint pageCount, byte[] bits)
    {
        // Blocks whose bitmap is complete are skipped: a stretch for one of them is out of order.
        while (block < blocks.Count && nextPage == HostPages(block) && blockIndex > block)
        {
            block++;
            nextPage = 0;
        }

        if (blockIndex != block || block >= blocks.Count)
        {
            throw new MigrationStreamException($"protocol error: a received bitmap for block index {blockIndex} where block {block} was due (the layout has {blocks.Count} blocks)");
        }

        ulong pages = HostPages(block);
        if (firstPage != nextPage || pageCount > pages - firstPage)
        {
            throw new MigrationStreamException(
                $"protocol error: the received bitmap of '{PeerText.Name(blocks[block].Name)}' covers host pages [{firstPage}, +{pageCount}), but {pages - nextPage} from page {nextPage} were due");
        }

        for (uint i = 0; i < pageCount; i++)
        {
            if ((bits[i / 8] & (1 << (int)(i % 8))) != 0)
            {
                received[block].Set(firstPage + i);
            }
        }

        nextPage += pageCount;
    }

    /// <summary>PostcopyResumeReady: every block must be complete, and the count must be the layout's.</summary>
    public void Finish(int blockCount)
    {
        while (block < blocks.Count && nextPage == HostPages(block))
        {
            block++;
            nextPage = 0;
        }

        if (blockCount != blocks.Count || block != blocks.Count)
        {
            throw new MigrationStreamException(
                $"protocol error: the received bitmaps end after {block} of {blocks.Count} blocks (PostcopyResumeReady says {blockCount})");
        }
    }

    /// <summary>Host pages the bitmap of block <paramref name="index"/> holds: its used length in host pages.</summary>
    private ulong HostPages(int index) => blocks[index].UsedLength / blocks[index].PageSize;

    /// <summary>
    /// The destination's word is the truth: every host page it does not have becomes dirty here (to be sent), every
    /// page it has becomes clean. Pages in flight when the connection broke were lost; this finds them. Returns the
    /// number of 4 KiB pages left to send.
    /// </summary>
    public ulong ApplyToDirty()
    {
        ulong dirty = 0;
        for (int index = 0; index < blocks.Count; index++)
        {
            RamBlock ram = blocks[index];
            ulong small = ram.PageSize / DirtyBitmap.PageSize;
            ram.DirtyBitmap.ClearRange(0, ram.DirtyBitmap.PageCount);
            for (ulong page = 0; page < HostPages(index); page++)
            {
                if (!received[index].IsSet(page))
                {
                    ram.DirtyBitmap.SetRange(page * small, small);
                    dirty += small;
                }
            }
        }

        return dirty;
    }
}
