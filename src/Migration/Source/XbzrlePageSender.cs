using System.Runtime.CompilerServices;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Migration.Source;

/// <summary>
/// Precopy with the <c>xbzrle</c> capability: sends each page it is given (one the cache holds, or a non-zero one) as a
/// delta against the bytes last sent for it when the cache holds them (<see cref="XbzrleCache"/>,
/// <see cref="XbzrleEncoding"/>), whole otherwise, and keeps the cache equal to what the destination holds. Deltas of
/// consecutive pages share a record, and so do consecutive pages sent whole from consecutive slots; the caller calls
/// <see cref="Flush"/> before it flushes the stream. Not thread-safe: the migration thread's.
/// </summary>
/// <remarks>
/// While the guest runs, each page is first copied out of guest memory (a snapshot): the guest may write it during
/// the encoding, and both the record and the cache must describe one and the same version of it. With every vCPU
/// stopped (<c>stable</c>) guest memory holds still and is encoded where it lies.
/// </remarks>
internal sealed class XbzrlePageSender(XbzrleCache cache, RecordWriter writer) : IDisposable
{
    private const int PageSize = XbzrleEncoding.PageSize;

    /// <summary>
    /// The largest delta sent: half a page. Past that a delta saves less than half the bytes, while a whole page costs
    /// the destination one copy (read straight into guest RAM, with no decoding) and the encoder can stop early;
    /// QEMU's own limit is the whole page, which would save a few hundred bytes at most at a higher cost on both ends.
    /// </summary>
    public const int MaxDeltaBytes = PageSize / 2;

    /// <summary>Pages missed in a row go as one data record of up to this many (64 KiB, as <see cref="PageRunWriter"/>'s runs).</summary>
    private const int MaxMissRun = 16;

    /// <summary>
    /// Deltas of consecutive pages go as one record of up to this many: a record per page would cost both ends a header,
    /// two checksum calls and a trip through the receive loop for three bytes of delta, thousands of times in the
    /// downtime.
    /// </summary>
    private const int MaxDeltaRun = 64;

    private readonly byte[] snapshot = GC.AllocateUninitializedArray<byte>(PageSize);

    /// <summary>The pending delta record's body: per page a u16 length and the delta (<see cref="PageRecord.WriteDeltas"/>).</summary>
    private readonly byte[] deltaRun = GC.AllocateUninitializedArray<byte>(MaxDeltaRun * (PageRecord.DeltaLengthBytes + MaxDeltaBytes));
    private int deltaBlock;
    private ulong deltaFirstPage;
    private int deltaPages;
    private int deltaUsed;

    /// <summary>
    /// Consecutive missed pages of one block, already copied into consecutive slots and not yet written: the first
    /// pass is mostly misses, and one record per page would cost the destination thousands of records.
    /// </summary>
    private int missBlock;
    private ulong missFirstPage;
    private int missFirstSlot;
    private int missPages;

    public ulong CacheSize => cache.Size;

    /// <summary>Pages sent as deltas (QEMU's xbzrle-cache.pages).</summary>
    public ulong Pages { get; private set; }

    /// <summary>Bytes of delta data sent, framing not included (QEMU's xbzrle-cache.bytes).</summary>
    public ulong Bytes { get; private set; }

    /// <summary>Non-zero pages not in the cache, sent whole (QEMU's xbzrle-cache.cache-miss).</summary>
    public ulong CacheMisses { get; private set; }

    /// <summary>Cached pages whose delta exceeded <see cref="MaxDeltaBytes"/>, sent whole (QEMU's xbzrle-cache.overflow).</summary>
    public ulong Overflows { get; private set; }

    /// <summary>Cached pages found unchanged (dirtied with the same bytes): nothing sent, the destination has them.</summary>
    public ulong Unchanged { get; private set; }

    /// <summary>Page bytes the deltas (and unchanged pages) did not send: what the rate estimate adds back.</summary>
    public ulong SavedBytes { get; private set; }

    /// <summary>Whether the cache holds what was last sent for this page (then <see cref="Send"/> makes a delta).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public bool Holds(int blockIndex, ulong page) => !cache.Find(blockIndex, page).IsEmpty;

    /// <summary>Sends page <paramref name="page"/> (4 KiB index) of a block, which is not all zeros or is in the cache. Returns true if it went whole.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public bool Send(int blockIndex, RamBlock block, ulong page, bool stable)
    {
        ulong offset = page * PageSize;
        Span<byte> guest = block.GetSpan(offset, PageSize);
        Span<byte> cached = cache.Find(blockIndex, page);
        if (cached.IsEmpty)
        {
            // A miss: what goes out is what the slot gets, copied from guest memory once, and sent from the slot (with
            // the next misses, if they follow in the block and in the cache).
            int slot = cache.SlotOf(blockIndex, page);
            bool extends = missPages > 0 && missPages < MaxMissRun && blockIndex == missBlock
                && page == missFirstPage + (ulong)missPages && slot == missFirstSlot + missPages;
            if (!extends)
            {
                FlushDeltas();
                FlushMisses();
                missBlock = blockIndex;
                missFirstPage = page;
                missFirstSlot = slot;
            }

            guest.CopyTo(cache.Claim(blockIndex, page));
            missPages++;
            CacheMisses++;
            return true;
        }

        FlushMisses();
        ReadOnlySpan<byte> current = guest;
        if (!stable)
        {
            guest.CopyTo(snapshot);
            current = snapshot;
        }

        bool extendsRun = deltaPages > 0 && deltaPages < MaxDeltaRun && blockIndex == deltaBlock && page == deltaFirstPage + (ulong)deltaPages;
        if (!extendsRun)
        {
            FlushDeltas();
        }

        // Encoded straight into the pending record, after the room for its length.
        Span<byte> entry = deltaRun.AsSpan(deltaUsed);
        int length = XbzrleEncoding.Encode(cached, current, entry[PageRecord.DeltaLengthBytes..], MaxDeltaBytes);
        if (length < 0)
        {
            FlushDeltas();
            current.CopyTo(cached);
            PageRecord.WriteData(writer, blockIndex, offset, cached);
            Overflows++;
            return true;
        }

        SavedBytes += (ulong)(PageSize - length);
        if (length == 0)
        {
            Unchanged++;
            if (deltaPages == 0)
            {
                // Nothing to say, and no record to say it in.
                return false;
            }
        }
        else
        {
            // The slot takes the change the same way the destination does: both then hold the same bytes.
            XbzrleEncoding.Apply(entry.Slice(PageRecord.DeltaLengthBytes, length), cached);
            Pages++;
            Bytes += (ulong)length;
        }

        // An unchanged page inside a run costs its two length bytes and keeps the run going.
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(entry, (ushort)length);
        if (deltaPages == 0)
        {
            deltaBlock = blockIndex;
            deltaFirstPage = page;
        }

        deltaPages++;
        deltaUsed += PageRecord.DeltaLengthBytes + length;
        return false;
    }

    /// <summary>The page went as a zero page: its slot no longer holds what the destination has.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public void Forget(int blockIndex, ulong page)
    {
        // Tags change here, not slots: a pending run is safe unless it holds this very page (never, within one pass).
        if (missPages > 0 && blockIndex == missBlock && page >= missFirstPage && page < missFirstPage + (ulong)missPages)
        {
            FlushMisses();
        }

        cache.Forget(blockIndex, page);
    }

    /// <summary>Releases the cache's memory; counters stay readable.</summary>
    public void Dispose() => cache.Dispose();

    /// <summary>Writes the pending records, missed pages and deltas (into the writer's buffer: the caller flushes the stream).</summary>
    public void Flush()
    {
        FlushMisses();
        FlushDeltas();
    }

    private void FlushMisses()
    {
        if (missPages > 0)
        {
            PageRecord.WriteData(writer, missBlock, missFirstPage * PageSize, cache.SlotRange(missFirstSlot, missPages));
            missPages = 0;
        }
    }

    private void FlushDeltas()
    {
        if (deltaPages > 0)
        {
            PageRecord.WriteDeltas(writer, deltaBlock, deltaFirstPage * PageSize, deltaPages, deltaRun.AsSpan(0, deltaUsed));
            deltaPages = 0;
            deltaUsed = 0;
        }
    }
}
