using System.Runtime.CompilerServices;
using Vmm.Ram;

namespace Vmm.Migration.Source;

/// <summary>
/// Tells whether a 4 KiB page of a block is all zeros, as cheaply as it can: on anonymous memory a page never
/// populated (<see cref="PageMap"/>) is zero without being read — reading it would fault in the zero page, and a later
/// guest write there would pay a copy-on-write fault with a TLB flush on top. Other pages are scanned.
/// </summary>
internal sealed class ZeroPageDetector : IDisposable
{
    private const ulong PageSize = DirtyBitmap.PageSize;
    private const int ChunkPages = 512;

    private readonly PageMap pageMap = new();
    private readonly bool[] populated = new bool[ChunkPages];
    private RamBlock? chunkBlock;
    private ulong chunk = ulong.MaxValue;

    /// <summary>Whether page <paramref name="page"/> (4 KiB index) of <paramref name="block"/> reads as zeros now.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public bool IsZero(RamBlock block, ulong page)
    {
        if (block.Backend == RamBackend.Anonymous)
        {
            // One pagemap read covers 512 pages; callers walk mostly forwards.
            if (page / ChunkPages != chunk || block != chunkBlock)
            {
                chunk = page / ChunkPages;
                chunkBlock = block;
                ulong first = chunk * ChunkPages;
                int count = (int)Math.Min(ChunkPages, (block.UsedLength / PageSize) - first);
                pageMap.Query(block.HostAddressOf(first * PageSize), populated.AsSpan(0, count));
            }

            if (!populated[(int)(page % ChunkPages)])
            {
                return true;
            }
        }

        return !block.GetSpan(page * PageSize, (int)PageSize).ContainsAnyExcept((byte)0);
    }

    /// <summary>
    /// Whether a whole host page (<paramref name="hostPages"/> 4 KiB pages from <paramref name="first"/>) is zero. Host
    /// pages span several 4 KiB pages only on hugetlbfs, where the page map says nothing: those are scanned whole.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public bool IsZero(RamBlock block, ulong first, ulong hostPages) => hostPages == 1
        ? IsZero(block, first)
        : !block.GetSpan(first * PageSize, (int)(hostPages * PageSize)).ContainsAnyExcept((byte)0);

    /// <summary>Forgets the cached pagemap chunk: pages may have been populated since (the guest runs).</summary>
    public void Invalidate()
    {
        chunkBlock = null;
        chunk = ulong.MaxValue;
    }

    public void Dispose() => pageMap.Dispose();
}
