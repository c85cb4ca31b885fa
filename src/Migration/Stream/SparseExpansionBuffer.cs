using System.Runtime.CompilerServices;

namespace Vmm.Migration.Stream;

/// <summary>
/// Where a thread that places postcopy pages expands a sparse Page record (<see cref="SparsePageEncoding"/>, up to
/// <see cref="SparsePageEncoding.MaxRecordPages"/> pages) into plain pages for one userfaultfd COPY. The buffer is kept
/// all zeros between records: an expansion writes only each page's runs, and <see cref="Reset"/> clears only what it
/// wrote. Clearing the whole 256 KiB for every record was a memset of every pushed byte on the receive thread, which
/// is the postcopy push's critical path (10–20 ms per 256 MiB of sparse pages here).
/// </summary>
/// <remarks>
/// One owner thread. If an expansion fails, or its pages are never <see cref="Reset"/> (the placement threw), the next
/// expansion clears the whole buffer first: what it hands out is never anything but the record's pages.
/// </remarks>
public sealed class SparseExpansionBuffer
{
    private const int PageSize = SparsePageEncoding.PageSize;

    private readonly byte[] buffer = new byte[SparsePageEncoding.MaxRecordPages * PageSize];

    /// <summary>Per expanded page, the bytes its runs wrote: what <see cref="Reset"/> clears.</summary>
    private readonly (int Start, int End)[] written = new (int, int)[SparsePageEncoding.MaxRecordPages];

    /// <summary>Pages of the last expansion whose extents are in <see cref="written"/>; -1 when the buffer is not known to be clean.</summary>
    private int expandedPages;

    /// <summary>
    /// Expands a sparse record's data (<paramref name="pages"/> pages: each a u16 length and its encoding) and returns
    /// the pages, valid until the next call. Every malformed part is a <see cref="MigrationStreamException"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public ReadOnlySpan<byte> Expand(ReadOnlySpan<byte> encoded, ulong pages)
    {
        if (pages == 0 || pages > SparsePageEncoding.MaxRecordPages)
        {
            throw new MigrationStreamException($"corrupt migration stream: a sparse Page record of {pages} pages (1 to {SparsePageEncoding.MaxRecordPages})");
        }

        if (expandedPages != 0)
        {
            // Not reset since the last expansion (or that one failed half-way): start from zeros again.
            Array.Clear(buffer);
        }

        expandedPages = -1;
        ReadOnlySpan<byte> expanded = SparsePageEncoding.Expand(encoded, pages, buffer, written);
        expandedPages = (int)pages;
        return expanded;
    }

    /// <summary>The pages of the last expansion, until the next one or <see cref="Reset"/>; empty if it failed.</summary>
    public ReadOnlySpan<byte> Pages => expandedPages > 0 ? buffer.AsSpan(0, expandedPages * PageSize) : default;

    /// <summary>The pages of the last expansion are placed: back to zeros, clearing only what it wrote.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public void Reset()
    {
        if (expandedPages < 0)
        {
            return;
        }

        for (int i = 0; i < expandedPages; i++)
        {
            (int start, int end) = written[i];
            buffer.AsSpan((i * PageSize) + start, end - start).Clear();
        }

        expandedPages = 0;
    }
}
