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

    /// <summary>Postcopy: pages requested by the destination's faults (both sides count them).</summary>
    public ulong PostcopyRequests { get; init; }

    /// <summary>Postcopy, destination: faults on received zero pages resolved with no request.</summary>
    public ulong PostcopyLocalFaults { get; init; }

    /// <summary>Postcopy, destination: total time vCPUs spent blocked on missing pages (one vCPU: also the vCPU block time).</summary>
    public double PostcopyBlocktimeMs { get; init; }

    /// <summary>Postcopy, destination: pages dropped because their range was no longer registered (remapped, shrunk).</summary>
    public ulong PostcopyDroppedPages { get; init; }

    /// <summary>
    /// Postcopy: 4 KiB pages that travelled on the preempt channel (answers to page requests) — sent, on the source;
    /// received, on the destination. 0 when the migration had no preempt channel.
    /// </summary>
    public ulong PostcopyPreemptPages { get; init; }

    /// <summary>
    /// Postcopy: 4 KiB pages of the background push whose data went through the shared-memory ring — written, on the
    /// source; placed from it, on the destination. 0 without a ring (capability postcopy-shared-memory, Unix sockets).
    /// </summary>
    public ulong PostcopySharedPages { get; init; }

    /// <summary>
    /// 4 KiB pages that went as sparse pages (zero-run encoded, docs/migration.md "Sparse pages") — sent, on the source
    /// (precopy's last pass and the postcopy push); received, on the destination.
    /// </summary>
    public ulong SparsePages { get; init; }

    /// <summary>Postcopy, destination: pages that arrived after they were already here (harmless duplicates).</summary>
    public ulong PostcopyDuplicatePages { get; init; }

    /// <summary>Postcopy, destination: faults resolved locally with CONTINUE (minor faults on received, clean pages).</summary>
    public ulong PostcopyContinuePages { get; init; }

    /// <summary>Postcopy, destination: host pages that arrived from the source (requested or pushed) and were placed.</summary>
    public ulong PostcopyFetchedPages { get; init; }

    /// <summary>Postcopy, destination: host pages not valid here at the switchover (stale or never sent).</summary>
    public ulong PostcopyStalePages { get; init; }

    /// <summary>Postcopy, destination: blocks placed with MINOR faults (CONTINUE) rather than MISSING faults only.</summary>
    public int PostcopyMinorBlocks { get; init; }

    /// <summary>Source: pages a precopy pass skipped because the guest reported them free and they stayed clean.</summary>
    public ulong FreePageHintSkippedPages { get; init; }

    /// <summary>Source, xbzrle on: the cache's bytes (QEMU's xbzrle-cache.cache-size); 0 without xbzrle.</summary>
    public ulong XbzrleCacheSize { get; init; }

    /// <summary>Source, xbzrle: bytes of delta data sent (QEMU's xbzrle-cache.bytes).</summary>
    public ulong XbzrleBytes { get; init; }

    /// <summary>Source, xbzrle: pages sent as deltas (QEMU's xbzrle-cache.pages).</summary>
    public ulong XbzrlePages { get; init; }

    /// <summary>Source, xbzrle: non-zero pages not in the cache, sent whole (QEMU's xbzrle-cache.cache-miss).</summary>
    public ulong XbzrleCacheMisses { get; init; }

    /// <summary>Source, xbzrle: deltas too large, pages sent whole (QEMU's xbzrle-cache.overflow).</summary>
    public ulong XbzrleOverflows { get; init; }

    /// <summary>Source, xbzrle: dirty pages found unchanged against the cache, so not sent at all (vmm's).</summary>
    public ulong XbzrleUnchanged { get; init; }

    public ulong FaultCount { get; init; }

    public double FaultLatencyP50Us { get; init; }

    public double FaultLatencyP99Us { get; init; }

    public double FaultLatencyMaxUs { get; init; }
}
