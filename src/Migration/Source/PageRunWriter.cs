using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Migration.Source;

/// <summary>
/// Turns a forward walk over pages into few Page records: consecutive zero pages become one zero record, consecutive
/// data pages one record of up to <see cref="MaxDataBytes"/>. Fewer records mean fewer headers and checksums here and,
/// in postcopy, one userfaultfd placement per run on the destination instead of one per page.
/// </summary>
/// <remarks>
/// A data run is read from guest memory when it is written out, not when its pages are added: callers clear the
/// dirty bits first, so a page the guest changes in between is dirty again and sent again. With a shared ring (the
/// postcopy push on one host) a data run's bytes go into the ring and the record only points at them; a full ring
/// first sends the records written so far (the destination frees room only for runs it has heard of) and then waits,
/// asking <paramref name="broken"/> whether the destination is still there. With <paramref name="stable"/> (every vCPU
/// stopped: the last precopy pages) a data run goes from guest memory to the socket with no copy
/// (<see cref="RecordWriter.WriteStable"/>), so runs can be longer too. With <paramref name="sparse"/> (capability
/// sparse-pages: precopy without xbzrle, the postcopy push) each 4 KiB page of a data run that is mostly zeros goes as its zero-run encoding
/// (<see cref="SparsePageEncoding"/>) in a sparse record on the stream — never through the ring: a few bytes on the
/// socket cost less than copying and checksumming 4 KiB into the ring, and the destination builds the page in a buffer
/// that stays in its cache. The other pages of the run go as before, as shorter runs.
/// </remarks>
internal sealed class PageRunWriter(RecordWriter writer, SharedPageRing? ring = null, Func<string?>? broken = null, bool stable = false, bool sparse = false)
{
    /// <summary>The largest data record: 64 pages of 4 KiB, or one huge page.</summary>
    public const ulong MaxDataBytes = 64 * 1024;

    /// <summary>Through the shared ring a record costs no copy, so runs can be longer: fewer records and placements.</summary>
    public const ulong MaxSharedDataBytes = 256 * 1024;

    /// <summary>
    /// With the guest stopped a record costs no copy either; a run this long is still checksummed and sent while it
    /// is in the cache, and one in the destination's cache while it checksums what it read straight into guest RAM.
    /// </summary>
    public const ulong MaxStableDataBytes = 1 << 20;

    private readonly ulong maxDataBytes = ring is not null ? MaxSharedDataBytes : stable ? MaxStableDataBytes : MaxDataBytes;

    /// <summary>Zero runs are capped too: the length field is 32 bits.</summary>
    private const ulong MaxZeroBytes = 1ul << 30;

    private RamBlock? block;
    private int blockIndex;
    private ulong start;
    private ulong length;
    private bool zero;
    private long sharedBytes;
    private long sparsePages;
    private long sparseSavedBytes;

    /// <summary>Sparse records being built: per page a u16 length and its encoding.</summary>
    private byte[]? encodings;

    /// <summary>Bytes of page data that went through the shared ring (read by other threads for the statistics).</summary>
    public ulong SharedBytes => (ulong)Interlocked.Read(ref sharedBytes);

    /// <summary>Pages sent as sparse pages (read by other threads for the statistics).</summary>
    public ulong SparsePages => (ulong)Interlocked.Read(ref sparsePages);

    /// <summary>
    /// Page bytes moved that the stream's byte count does not show: the data put in the ring, and 4096 per sparse page
    /// (its few encoded bytes are on the stream too). The push's batches and its bandwidth cap count pages moved, so a
    /// cap slows a push of sparse pages as much as one of whole pages.
    /// </summary>
    public ulong OffStreamBytes => SharedBytes + (SparsePages * SparsePageEncoding.PageSize);

    /// <summary>
    /// What sparse pages saved on the stream: 4096 per page less its encoding and length. The precopy switchover
    /// estimate counts pages moved as if whole, as with xbzrle's deltas.
    /// </summary>
    public ulong SparseSavedBytes => (ulong)Interlocked.Read(ref sparseSavedBytes);

    /// <summary>Adds the bytes [<paramref name="offset"/>, +<paramref name="pageLength"/>) of a block, zero or not.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public void Add(int index, RamBlock ramBlock, ulong offset, ulong pageLength, bool isZero)
    {
        bool extends = length > 0 && ramBlock == block && isZero == zero && start + length == offset
            && length + pageLength <= (isZero ? MaxZeroBytes : Math.Max(maxDataBytes, pageLength));
        if (!extends)
        {
            Flush();
            block = ramBlock;
            blockIndex = index;
            start = offset;
            zero = isZero;
        }

        length += pageLength;
    }

    /// <summary>Writes the pending run as one record (into the writer's buffer: the caller flushes the stream).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public void Flush()
    {
        if (length == 0)
        {
            return;
        }

        if (zero)
        {
            PageRecord.WriteZeros(writer, blockIndex, start, length);
        }
        else if (sparse && block!.PageSize == SparsePageEncoding.PageSize)
        {
            // Huge pages never go sparse: postcopy places them whole, and they are rarely mostly zeros.
            WriteSparseOrData(start, length);
        }
        else
        {
            WriteData(start, length);
        }

        length = 0;
    }

    /// <summary>
    /// Writes the pages of [<paramref name="from"/>, +<paramref name="bytes"/>) in order: consecutive sparse pages as
    /// sparse records, the others as data runs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private void WriteSparseOrData(ulong from, ulong bytes)
    {
        const int PageSize = SparsePageEncoding.PageSize;
        byte[] encoded = encodings ??= new byte[SparsePageEncoding.MaxRecordPages * (SparsePageEncoding.LengthBytes + SparsePageEncoding.Limit)];
        ulong end = from + bytes;
        ulong dataFrom = from;
        ulong sparseFrom = from;
        int sparseCount = 0;
        int used = 0;
        for (ulong offset = from; offset < end; offset += PageSize)
        {
            if (offset + PageSize < end)
            {
                Prefetch(block!.HostAddressOf(offset + PageSize));
            }

            int size = SparsePageEncoding.Encode(block!.GetSpan(offset, PageSize), encoded.AsSpan(used + SparsePageEncoding.LengthBytes), SparsePageEncoding.Limit);
            if (size < 0)
            {
                if (sparseCount > 0)
                {
                    WriteSparse(sparseFrom, sparseCount, encoded.AsSpan(0, used));
                    sparseCount = 0;
                    used = 0;
                    dataFrom = offset;
                }

                continue;
            }

            if (dataFrom < offset)
            {
                WriteData(dataFrom, offset - dataFrom);
            }

            if (sparseCount == 0)
            {
                sparseFrom = offset;
            }

            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(encoded.AsSpan(used), (ushort)size);
            used += SparsePageEncoding.LengthBytes + size;
            sparseCount++;
            dataFrom = offset + PageSize;
            if (sparseCount == SparsePageEncoding.MaxRecordPages)
            {
                WriteSparse(sparseFrom, sparseCount, encoded.AsSpan(0, used));
                sparseCount = 0;
                used = 0;
            }
        }

        if (sparseCount > 0)
        {
            WriteSparse(sparseFrom, sparseCount, encoded.AsSpan(0, used));
        }

        if (dataFrom < end)
        {
            WriteData(dataFrom, end - dataFrom);
        }
    }

    /// <summary>
    /// Asks for the next page's cache lines while this one is encoded: the encoder reads every byte of a mostly-zero
    /// page, and the hardware prefetcher stops at each 4 KiB boundary. Measured here, encoding 256 MiB of pages that
    /// hold one counter byte each, not in the cache: 43 ms without, 32 ms with.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private static unsafe void Prefetch(nint page)
    {
        if (!Sse.IsSupported)
        {
            return;
        }

        for (int line = 0; line < SparsePageEncoding.PageSize; line += 64)
        {
            Sse.Prefetch0((void*)(page + line));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private void WriteSparse(ulong from, int pages, ReadOnlySpan<byte> encoded)
    {
        PageRecord.WriteSparse(writer, blockIndex, from, pages, encoded);
        Interlocked.Add(ref sparsePages, pages);
        Interlocked.Add(ref sparseSavedBytes, ((long)pages * SparsePageEncoding.PageSize) - encoded.Length);
    }

    /// <summary>A data run, through the ring when there is one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private void WriteData(ulong from, ulong bytes)
    {
        if (ring is not null)
        {
            (ulong position, uint crc) = ring.Write(block!.GetSpan(from, (int)bytes), writer.Flush, broken ?? (() => null));
            PageRecord.WriteShared(writer, blockIndex, from, bytes, position, crc);
            Interlocked.Add(ref sharedBytes, (long)bytes);
        }
        else
        {
            PageRecord.WriteData(writer, blockIndex, from, block!.GetSpan(from, (int)bytes), stable);
        }
    }
}
