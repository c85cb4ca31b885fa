namespace Vmm.Guests;

/// <summary>Every guest the builder knows, in the order it builds and lists them.</summary>
public static class GuestCatalog
{
    public static IReadOnlyList<IGuest> All { get; } =
    [
        new Hello(),
        new MemTest(),
        new Dirty(),
        new Dirty(rangeMiB: 16),
        new Dirty(rangeMiB: 32),
        new Dirty(rangeMiB: 256),
        new FreePageHint(),
        new Echo(),
        new TripleFault(),
        new Spin(),
        new TscCounter(),
        new RamTop(),
        new Alu(),
        new IrqRate(),
    ];

    public static IGuest? Find(string name) =>
        All.FirstOrDefault(g => string.Equals(g.Name, name, StringComparison.Ordinal));
}
