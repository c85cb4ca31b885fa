namespace Vmm.Ram;

/// <summary>What backs a RAM block's pages (DESIGN §4).</summary>
public enum RamBackend
{
    /// <summary>Private anonymous memory.</summary>
    Anonymous,

    /// <summary>A memfd mapped MAP_SHARED, optionally mapped a second time as an alias.</summary>
    Shared,

    /// <summary>2 MiB huge pages: a hugetlb memfd or a file on a hugetlbfs mount.</summary>
    Hugetlbfs,
}
