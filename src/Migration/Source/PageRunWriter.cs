using System.Runtime.CompilerServices;
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
/// (<see cref="RecordWriter.WriteStable"/>), so runs can be longer too.
/// </remarks>
internal sealed class PageRunWriter(RecordWriter writer, SharedPageRing? ring = null, Func<string?>? broken = null, bool stable = false)
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

    /// <summary>Bytes of page data that went through the shared ring (read by other threads for the statistics).</summary>
    public ulong SharedBytes => (ulong)Interlocked.Read(ref sharedBytes);

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
        else if (ring is not null)
        {
            (ulong position, uint crc) = ring.Write(block!.GetSpan(start, (int)length), writer.Flush, broken ?? (() => null));
            PageRecord.WriteShared(writer, blockIndex, start, length, position, crc);
            Interlocked.Add(ref sharedBytes, (long)length);
        }
        else
        {
            PageRecord.WriteData(writer, blockIndex, start, block!.GetSpan(start, (int)length), stable);
        }

        length = 0;
    }
}
