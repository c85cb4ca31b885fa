namespace Vmm.Ram;

/// <summary>
/// Everything needed to create a RAM block (DESIGN §4). <paramref name="Size"/> is the initial used length;
/// a <paramref name="MaxSize"/> larger than it makes the block resizable up to that length.
/// </summary>
/// <param name="Name">Identity of the block across migration, e.g. <c>pc.ram</c>.</param>
/// <param name="GuestBase">Guest physical address of offset 0.</param>
/// <param name="Size">Initial used length in bytes.</param>
/// <param name="MaxSize">Address space reserved for growth; null or equal to <paramref name="Size"/> for a fixed block.</param>
/// <param name="Backend">What backs the pages.</param>
/// <param name="MemPath">Hugetlbfs only: a directory on a hugetlbfs mount to create the backing file in, instead of a memfd.</param>
/// <param name="Alias">Shared and hugetlbfs only: map the backing file a second time, to fill pages behind a MINOR-registered primary mapping.</param>
public sealed record RamBlockSpec(
    string Name,
    ulong GuestBase,
    ulong Size,
    ulong? MaxSize = null,
    RamBackend Backend = RamBackend.Anonymous,
    string? MemPath = null,
    bool Alias = false);
