using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Vmm.Migration.Stream;

/// <summary>
/// A sparse page: a 4 KiB page that is mostly zeros, sent as its zero-run encoding — exactly the XBZRLE delta of the
/// page against an all-zero page (<see cref="XbzrleEncoding"/>: pairs of a zero run and a non-zero run with its bytes).
/// A page holding one counter byte costs 3 bytes instead of 4096. docs/migration.md ("Sparse pages") has the details.
/// </summary>
/// <remarks>
/// The encoder here does not compare against a zero page: it looks for the next non-zero byte and the next zero byte
/// (vectorised: <see cref="FirstNonZero"/>, <c>IndexOf</c>), which reads each byte once. It gives up as soon as the
/// encoding cannot fit the limit, looking for the end of a non-zero run only within the bytes the limit still allows:
/// a dense page costs a scan of about <c>limit</c> bytes, not of the page. Its output is byte for byte what
/// <c>XbzrleEncoding.Encode(zeroPage, page, …)</c> gives, so the destination decodes it with the same checked decoder.
/// </remarks>
public static class SparsePageEncoding
{
    public const int PageSize = XbzrleEncoding.PageSize;

    /// <summary>
    /// The largest encoding the source sends as a sparse page: a quarter of a page. Beyond that the page goes whole: it
    /// saves the destination a clear and a decode, and the bytes saved by encoding shrink.
    /// </summary>
    public const int Limit = PageSize / 4;

    /// <summary>The most pages one sparse Page record covers: the destination expands them into a buffer this size.</summary>
    public const int MaxRecordPages = 64;

    /// <summary>The bytes before each page's encoding in a sparse record: its length, u16.</summary>
    public const int LengthBytes = 2;

    /// <summary>An unchanged (zero) stretch shorter than this inside a non-zero run is sent with it, as XBZRLE does.</summary>
    private const int MinZeroGap = 3;

    /// <summary>
    /// Encodes <paramref name="page"/> (4 KiB) into <paramref name="output"/>: returns the length (0: all zeros), or -1 when
    /// the encoding would exceed <paramref name="limit"/> bytes (the page is better sent whole; the scan stops there).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public static int Encode(ReadOnlySpan<byte> page, Span<byte> output, int limit)
    {
        if (page.Length != PageSize)
        {
            throw new ArgumentException("a sparse page is a whole 4 KiB page");
        }

        limit = Math.Min(limit, output.Length);
        int written = 0;
        int position = 0;
        while (true)
        {
            int zeros = FirstNonZero(page[position..]);
            if (zeros < 0)
            {
                return written;
            }

            int start = position + zeros;

            // At least one varint byte for each length: the non-zero run may have this many bytes at most.
            int budget = limit - written - XbzrleEncoding.VarintLength(zeros) - 1;
            if (budget < 1)
            {
                return -1;
            }

            // The run ends at the first stretch of MinZeroGap zeros (or the page's end); look for its zeros only
            // within the budget, so a dense page is given up after about `limit` bytes.
            int end = start + 1;
            while (true)
            {
                int window = Math.Min(PageSize, start + budget + 1) - end;
                int zero = window > 0 ? page.Slice(end, window).IndexOf((byte)0) : -1;
                if (zero < 0)
                {
                    if (start + budget + 1 < PageSize || window < 0)
                    {
                        return -1;
                    }

                    end = PageSize;
                    break;
                }

                end += zero;
                int gap = FirstNonZero(page[end..]);
                if (gap < 0 || gap >= MinZeroGap)
                {
                    break;
                }

                end += gap;
            }

            int changed = end - start;
            int needed = XbzrleEncoding.VarintLength(zeros) + XbzrleEncoding.VarintLength(changed) + changed;
            if (written + needed > limit)
            {
                return -1;
            }

            written += XbzrleEncoding.WriteVarint(output[written..], zeros);
            written += XbzrleEncoding.WriteVarint(output[written..], changed);
            page.Slice(start, changed).CopyTo(output[written..]);
            written += changed;
            position = end;
            if (position == PageSize)
            {
                return written;
            }
        }
    }

    /// <summary>
    /// The index of the first non-zero byte, or -1: what <c>IndexOfAnyExcept((byte)0)</c> answers, compiled optimised
    /// with the encoder. The library's method runs as its precompiled (ReadyToRun) code until tiering recompiles it,
    /// which takes a busy process seconds (JitWarmUp): encoding 256 MiB of one-counter-byte pages took 67–87 ms in the
    /// first three of six rounds of a fresh process and 36 ms after; with this, 50 ms in the first round and 38–41 ms
    /// after. A VMM process usually migrates once, so the first rounds are the ones that count.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private static int FirstNonZero(ReadOnlySpan<byte> bytes)
    {
        int i = 0;
        ref byte start = ref MemoryMarshal.GetReference(bytes);
        if (Vector512.IsHardwareAccelerated)
        {
            // Four vectors at a time: one test for 256 bytes of zeros, the usual case of a mostly-zero page.
            for (; i + (4 * Vector512<byte>.Count) <= bytes.Length; i += 4 * Vector512<byte>.Count)
            {
                Vector512<byte> any = Vector512.LoadUnsafe(ref start, (nuint)i)
                    | Vector512.LoadUnsafe(ref start, (nuint)(i + Vector512<byte>.Count))
                    | Vector512.LoadUnsafe(ref start, (nuint)(i + (2 * Vector512<byte>.Count)))
                    | Vector512.LoadUnsafe(ref start, (nuint)(i + (3 * Vector512<byte>.Count)));
                if (any != Vector512<byte>.Zero)
                {
                    break;
                }
            }

            for (; i + Vector512<byte>.Count <= bytes.Length; i += Vector512<byte>.Count)
            {
                ulong zeros = Vector512.Equals(Vector512.LoadUnsafe(ref start, (nuint)i), Vector512<byte>.Zero).ExtractMostSignificantBits();
                if (zeros != ulong.MaxValue)
                {
                    return i + BitOperations.TrailingZeroCount(~zeros);
                }
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i + Vector256<byte>.Count <= bytes.Length; i += Vector256<byte>.Count)
            {
                uint zeros = Vector256.Equals(Vector256.LoadUnsafe(ref start, (nuint)i), Vector256<byte>.Zero).ExtractMostSignificantBits();
                if (zeros != uint.MaxValue)
                {
                    return i + BitOperations.TrailingZeroCount(~zeros);
                }
            }
        }

        for (; i < bytes.Length; i++)
        {
            if (bytes[i] != 0)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>
    /// Takes the next page's encoding off the front of <paramref name="encoded"/> (a sparse record's data: per page a u16
    /// length and that many bytes), refusing a length that runs past the data.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public static ReadOnlySpan<byte> Next(ref ReadOnlySpan<byte> encoded, ulong pages)
    {
        int length = encoded.Length >= LengthBytes ? BinaryPrimitives.ReadUInt16LittleEndian(encoded) : -1;
        if (length < 0 || length > encoded.Length - LengthBytes)
        {
            throw new MigrationStreamException($"corrupt migration stream: the encodings of a sparse Page record end before its {pages} pages do");
        }

        ReadOnlySpan<byte> page = encoded.Slice(LengthBytes, length);
        encoded = encoded[(LengthBytes + length)..];
        return page;
    }

    /// <summary>Writes the page an encoding describes into <paramref name="page"/> (4 KiB): zeros, then the runs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public static void Decode(ReadOnlySpan<byte> encoding, Span<byte> page)
    {
        page.Clear();
        XbzrleEncoding.Apply(encoding, page, "sparse page");
    }

    /// <summary>Writes the runs of an encoding into <paramref name="page"/> (4 KiB), which the caller knows holds zeros.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public static void DecodeOntoZeros(ReadOnlySpan<byte> encoding, Span<byte> page) => XbzrleEncoding.Apply(encoding, page, "sparse page");

    /// <summary>
    /// Expands a sparse record's data (<paramref name="pages"/> pages) into <paramref name="output"/>, which must hold
    /// them; returns the expanded pages. Every malformed part is a <see cref="MigrationStreamException"/>, and nothing
    /// is written outside the pages. With <paramref name="written"/> (one entry per page) the caller knows the output
    /// holds zeros: each page's runs are written onto them and the extent they cover recorded
    /// (<see cref="SparseExpansionBuffer"/>); without, each page is cleared first.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public static ReadOnlySpan<byte> Expand(ReadOnlySpan<byte> encoded, ulong pages, Span<byte> output, Span<(int Start, int End)> written = default)
    {
        Span<byte> expanded = output[..checked((int)(pages * PageSize))];
        for (int i = 0; i < (int)pages; i++)
        {
            ReadOnlySpan<byte> encoding = Next(ref encoded, pages);
            Span<byte> page = expanded.Slice(i * PageSize, PageSize);
            if (written.IsEmpty)
            {
                Decode(encoding, page);
            }
            else
            {
                written[i] = XbzrleEncoding.Apply(encoding, page, "sparse page");
            }
        }

        RequireEnd(encoded);
        return expanded;
    }

    /// <summary>After the last page's encoding the record must end.</summary>
    public static void RequireEnd(ReadOnlySpan<byte> rest)
    {
        if (!rest.IsEmpty)
        {
            throw new MigrationStreamException($"corrupt migration stream: {rest.Length} unexpected trailing bytes after the encodings of a sparse Page record");
        }
    }
}
