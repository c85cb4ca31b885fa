namespace Vmm.Ram;

/// <summary>
/// /proc/self/pagemap: whether each 4 KiB page of our address space has ever been populated. For private anonymous
/// memory a page that is neither present nor swapped has never been written (or was discarded): it reads as zero,
/// and migration can say so without reading it — a read would fault in the zero page, ~1 µs each here.
/// </summary>
public sealed class PageMap : IDisposable
{
    private const ulong Present = 1ul << 63;
    private const ulong Swapped = 1ul << 62;

    private readonly FileStream file = new("/proc/self/pagemap", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
    private readonly byte[] buffer = new byte[8 * 512];

    /// <summary>
    /// Fills <paramref name="populated"/> with one flag per 4 KiB page from <paramref name="address"/> (at most 512 at a
    /// time): true when the page is present or swapped out.
    /// </summary>
    public void Query(nint address, Span<bool> populated)
    {
        int count = Math.Min(populated.Length, 512);
        file.Position = (long)((ulong)address / 4096 * 8);
        int bytes = count * 8;
        file.ReadExactly(buffer, 0, bytes);
        for (int i = 0; i < count; i++)
        {
            ulong entry = BitConverter.ToUInt64(buffer, i * 8);
            populated[i] = (entry & (Present | Swapped)) != 0;
        }
    }

    public void Dispose() => file.Dispose();
}
