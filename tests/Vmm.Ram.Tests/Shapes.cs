namespace Vmm.Ram.Tests;

/// <summary>The block shapes the backend tests run over: every backend, fixed and resizable.</summary>
internal static class Shapes
{
    public const ulong SmallPage = 4096;

    /// <summary>The block's host page size for a backend.</summary>
    public static ulong PageSizeOf(RamBackend backend) => backend == RamBackend.Hugetlbfs ? HugePages.PageSize : SmallPage;

    /// <summary>16 small pages or 2 huge pages; resizable blocks reserve twice that.</summary>
    public static RamBlockSpec Spec(RamBackend backend, bool resizable, string name = "test.ram", bool alias = true)
    {
        ulong page = PageSizeOf(backend);
        ulong size = backend == RamBackend.Hugetlbfs ? 2 * page : 16 * page;
        return new RamBlockSpec(name, 0x100000 * 64, size, resizable ? 2 * size : null, backend, Alias: alias && backend != RamBackend.Anonymous);
    }

    public static TheoryData<RamBackend, bool> All => new()
    {
        { RamBackend.Anonymous, false },
        { RamBackend.Shared, false },
        { RamBackend.Hugetlbfs, false },
        { RamBackend.Anonymous, true },
        { RamBackend.Shared, true },
        { RamBackend.Hugetlbfs, true },
    };

    public static TheoryData<RamBackend> Backends => new() { RamBackend.Anonymous, RamBackend.Shared, RamBackend.Hugetlbfs };

    public static TheoryData<RamBackend> FileBackends => new() { RamBackend.Shared, RamBackend.Hugetlbfs };

    /// <summary>A recognisable value for page <paramref name="page"/>.</summary>
    public static ulong Marker(ulong page) => 0xA5A5_0000_0000_0000ul | page;

    /// <summary>Writes each page's marker at its start and its end, through the primary mapping.</summary>
    public static void FillMarkers(RamBlock block, ulong fromOffset = 0)
    {
        for (ulong offset = fromOffset; offset < block.UsedLength; offset += block.PageSize)
        {
            ulong marker = Marker(offset / block.PageSize);
            block.Write(offset, BitConverter.GetBytes(marker));
            block.Write(offset + block.PageSize - 8, BitConverter.GetBytes(marker));
        }
    }

    public static ulong ReadUInt64(RamBlock block, ulong offset)
    {
        Span<byte> bytes = stackalloc byte[8];
        block.Read(offset, bytes);
        return BitConverter.ToUInt64(bytes);
    }

    /// <summary>Whether every byte of a page range reads zero.</summary>
    public static bool IsZero(RamBlock block, ulong offset, ulong length)
    {
        for (ulong at = offset; at < offset + length; at += 1 << 20)
        {
            if (block.GetSpan(at, (int)Math.Min(1ul << 20, offset + length - at)).ContainsAnyExcept((byte)0))
            {
                return false;
            }
        }

        return true;
    }
}
