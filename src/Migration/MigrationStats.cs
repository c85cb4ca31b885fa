namespace Vmm.Migration;

/// <summary>A snapshot of one migration for query-migrate. Times in milliseconds, sizes in bytes.</summary>
public sealed record MigrationStats
{
    public MigrationStatus Status { get; init; }

    public string? ErrorDescription { get; init; }

    public long TotalTimeMs { get; init; }

    public long SetupTimeMs { get; init; }

    public long DowntimeMs { get; init; }

    /// <summary>Downtime in microseconds: the millisecond field rounds away everything interesting here.</summary>
    public long DowntimeUs { get; init; }

    public long ExpectedDowntimeMs { get; init; }

    public ulong TransferredBytes { get; init; }

    public ulong RemainingBytes { get; init; }

    public ulong TotalBytes { get; init; }

    /// <summary>Zero pages sent as a flag only (QEMU: "duplicate").</summary>
    public ulong DuplicatePages { get; init; }

    /// <summary>Pages sent with their data.</summary>
    public ulong NormalPages { get; init; }

    public ulong NormalBytes { get; init; }

    public ulong DirtyPagesRate { get; init; }

    public ulong DirtySyncCount { get; init; }

    public double Mbps { get; init; }

    public ulong PagesPerSecond { get; init; }

    public int Passes { get; init; }

    public ulong PageSize { get; init; } = 4096;
}
