using Vmm.Linux;

namespace Vmm.Ram.Tests;

/// <summary>How much host memory really backs a block, measured the way the kernel accounts it.</summary>
internal static class Backing
{
    /// <summary>Anonymous: resident bytes of a range of the primary mapping (mincore).</summary>
    public static ulong ResidentBytes(RamBlock block, ulong offset, ulong length) =>
        Mincore.CountResident(block.HostAddress + (nint)offset, length) * (ulong)Environment.SystemPageSize;

    /// <summary>Shared and hugetlbfs: bytes allocated to the backing file (st_blocks × 512).</summary>
    public static ulong FileBytes(RamBlock block) => (ulong)Stat.Fstat(block.Fd!).Blocks * 512;

    /// <summary>Bytes backing [offset, offset+length) for anonymous blocks, or the whole file for file blocks.</summary>
    public static ulong Bytes(RamBlock block, ulong offset, ulong length) =>
        block.Backend == RamBackend.Anonymous ? ResidentBytes(block, offset, length) : FileBytes(block);
}
