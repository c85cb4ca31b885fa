using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Vmm.Migration.Stream;

/// <summary>
/// The delta of a page against the bytes last sent for it (QEMU's XBZRLE idea, this vmm's own encoding): a sequence of
/// pairs, each an unchanged run length and a changed run length (both ULEB128 varints) followed by the changed run's
/// bytes. Whatever follows the last pair is unchanged. docs/migration.md ("Delta pages") defines it precisely.
/// </summary>
/// <remarks>
/// Rules the decoder enforces (a hostile peer must never write outside the page, loop, or be half understood): a
/// varint has at most <see cref="MaxVarintBytes"/> bytes and no redundant trailing zero group; an unchanged run is at
/// least 1 except in the first pair; a changed run is at least 1; no run goes past the page; the changed bytes are all
/// present. An empty delta (nothing changed) is valid, though the source never sends one.
/// The loops are compiled optimised from their first call (AggressiveOptimization): a process usually migrates once,
/// and tier-0 code here would run thousands of pages in the downtime several times slower.
/// </remarks>
public static class XbzrleEncoding
{
    /// <summary>Every delta is of one 4 KiB page: run lengths are at most 4096, so two varint bytes (14 bits) suffice.</summary>
    public const int PageSize = 4096;

    public const int MaxVarintBytes = 2;

    /// <summary>
    /// An unchanged stretch shorter than this inside a changed run is sent as changed bytes: ending the run there and
    /// starting a new pair costs at least two varint bytes, so splitting would make the delta longer, not shorter.
    /// </summary>
    private const int MinUnchangedGap = 3;

    /// <summary>
    /// Encodes the change from <paramref name="previous"/> to <paramref name="current"/> (both one page) into
    /// <paramref name="output"/>. Returns the encoded length (0: identical pages), or -1 when the delta would exceed
    /// <paramref name="limit"/> bytes: then the page is better sent whole, and encoding stops there.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int Encode(ReadOnlySpan<byte> previous, ReadOnlySpan<byte> current, Span<byte> output, int limit)
    {
        if (previous.Length != PageSize || current.Length != PageSize)
        {
            throw new ArgumentException("XBZRLE encodes whole 4 KiB pages");
        }

        limit = Math.Min(limit, output.Length);
        int written = 0;
        int position = 0;
        while (position < PageSize)
        {
            // Vectorised: the common prefix of the rest of both pages is the unchanged run.
            int unchanged = previous[position..].CommonPrefixLength(current[position..]);
            if (position + unchanged == PageSize)
            {
                break;
            }

            int changedStart = position + unchanged;
            int changedEnd = ChangedRunEnd(previous, current, changedStart);
            int changed = changedEnd - changedStart;
            int needed = VarintLength(unchanged) + VarintLength(changed) + changed;
            if (written + needed > limit)
            {
                return -1;
            }

            written += WriteVarint(output[written..], unchanged);
            written += WriteVarint(output[written..], changed);
            current.Slice(changedStart, changed).CopyTo(output[written..]);
            written += changed;
            position = changedEnd;
        }

        return written;
    }

    /// <summary>
    /// Applies <paramref name="delta"/> to <paramref name="page"/> (one page, holding the bytes the delta was made
    /// against). A malformed delta throws <see cref="MigrationStreamException"/>; nothing is ever written outside
    /// <paramref name="page"/>, though a delta found malformed half-way may have changed part of it (the migration fails
    /// then, and no guest runs on that memory).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Apply(ReadOnlySpan<byte> delta, Span<byte> page) => Apply(delta, page, "XBZRLE delta");

    /// <summary>
    /// <see cref="Apply(ReadOnlySpan{byte}, Span{byte})"/>, naming the encoding as <paramref name="kind"/> in errors: a sparse
    /// page (<see cref="SparsePageEncoding"/>) is the same encoding applied to a zeroed page. Returns the bytes it wrote
    /// as one extent: from the first changed byte to the end of the last changed run (0, 0 for an empty delta).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static (int Start, int End) Apply(ReadOnlySpan<byte> delta, Span<byte> page, string kind)
    {
        if (page.Length != PageSize)
        {
            throw new ArgumentException("XBZRLE decodes whole 4 KiB pages");
        }

        int read = 0;
        int position = 0;
        int start = 0;
        bool first = true;
        while (read < delta.Length)
        {
            int unchanged = ReadVarint(delta, ref read, kind);
            if (unchanged == 0 && !first)
            {
                throw Corrupt(kind, "an unchanged run of 0 bytes after the first pair");
            }

            if (read == delta.Length)
            {
                throw Corrupt(kind, "an unchanged run without its changed run");
            }

            int changed = ReadVarint(delta, ref read, kind);
            if (changed == 0)
            {
                throw Corrupt(kind, "a changed run of 0 bytes");
            }

            if (unchanged > PageSize - position || changed > PageSize - position - unchanged)
            {
                throw Corrupt(kind, $"a run past the end of the page (at byte {position}: {unchanged} unchanged, {changed} changed)");
            }

            if (changed > delta.Length - read)
            {
                throw Corrupt(kind, $"{changed} changed bytes announced, {delta.Length - read} present");
            }

            position += unchanged;
            start = first ? position : start;
            delta.Slice(read, changed).CopyTo(page[position..]);
            position += changed;
            read += changed;
            first = false;
        }

        return (start, position);
    }

    /// <summary>
    /// Where the changed run starting at <paramref name="start"/> (a differing byte) ends: at the first unchanged
    /// stretch of at least <see cref="MinUnchangedGap"/> bytes, or the page's end. 32 bytes at a time where it can.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ChangedRunEnd(ReadOnlySpan<byte> previous, ReadOnlySpan<byte> current, int start)
    {
        int position = start;
        while (true)
        {
            int equal = FirstEqual(previous, current, position);
            if (equal == PageSize)
            {
                return PageSize;
            }

            int gap = previous[equal..].CommonPrefixLength(current[equal..]);
            if (gap >= MinUnchangedGap || equal + gap == PageSize)
            {
                return equal;
            }

            position = equal + gap;
        }
    }

    /// <summary>The first index from <paramref name="from"/> where both pages hold the same byte, or the page size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int FirstEqual(ReadOnlySpan<byte> previous, ReadOnlySpan<byte> current, int from)
    {
        int i = from;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + Vector256<byte>.Count <= PageSize; i += Vector256<byte>.Count)
            {
                uint mask = Vector256.Equals(Vector256.Create(previous.Slice(i, Vector256<byte>.Count)), Vector256.Create(current.Slice(i, Vector256<byte>.Count)))
                    .ExtractMostSignificantBits();
                if (mask != 0)
                {
                    return i + BitOperations.TrailingZeroCount(mask);
                }
            }
        }

        for (; i < PageSize; i++)
        {
            if (previous[i] == current[i])
            {
                return i;
            }
        }

        return PageSize;
    }

    public static int VarintLength(int value) => value < 0x80 ? 1 : 2;

    internal static int WriteVarint(Span<byte> output, int value)
    {
        if (value < 0x80)
        {
            output[0] = (byte)value;
            return 1;
        }

        output[0] = (byte)(0x80 | (value & 0x7F));
        output[1] = (byte)(value >> 7);
        return 2;
    }

    /// <summary>A ULEB128 of at most two bytes, without a redundant zero second byte.</summary>
    private static int ReadVarint(ReadOnlySpan<byte> delta, ref int read, string kind)
    {
        byte low = delta[read++];
        if ((low & 0x80) == 0)
        {
            return low;
        }

        if (read == delta.Length)
        {
            throw Corrupt(kind, "a varint cut off at the end of the delta");
        }

        byte high = delta[read++];
        if ((high & 0x80) != 0)
        {
            throw Corrupt(kind, $"a varint longer than {MaxVarintBytes} bytes");
        }

        if (high == 0)
        {
            throw Corrupt(kind, "an overlong varint (a redundant zero byte)");
        }

        return (low & 0x7F) | (high << 7);
    }

    private static MigrationStreamException Corrupt(string kind, string what) => new($"corrupt migration stream: {kind}: {what}");
}
