namespace Vmm.Tests.Ram;

/// <summary>
/// The RAM-block tests run one at a time and alone: they read host-wide counters (free huge pages, file blocks,
/// resident pages) that another test's guest would disturb, and several busy guests at once on a 2-core machine
/// would only make every wait slower.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RamCollection
{
    public const string Name = "ram";

    public const ulong MiB = 1ul << 20;
}
