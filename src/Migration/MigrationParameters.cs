namespace Vmm.Migration;

/// <summary>migrate-set-parameters: QEMU's names and units.</summary>
public sealed record MigrationParameters
{
    /// <summary>Largest acceptable pause of the guest at switchover, in milliseconds (QEMU default 300).</summary>
    public ulong DowntimeLimitMs { get; init; } = 300;

    /// <summary>Bandwidth cap in bytes per second; 0 means unlimited (this VMM's default: loopback is the common case).</summary>
    public ulong MaxBandwidth { get; init; }

    /// <summary>
    /// max-postcopy-bandwidth: bytes per second for the postcopy push, 0 = unlimited (QEMU's). Null (never set): the push
    /// keeps max-bandwidth's cap, as before this parameter existed. A running source reads it at once, also while
    /// paused, so a recovered migration can run at full speed.
    /// </summary>
    public ulong? MaxPostcopyBandwidth { get; init; }

    /// <summary>
    /// xbzrle-cache-size: bytes of the source's cache of sent pages for the xbzrle capability (QEMU's default, 64 MiB),
    /// from 4096 to 1 GiB; rounded down to a power of two of 4 KiB pages.
    /// </summary>
    public ulong XbzrleCacheSize { get; init; } = 64 << 20;

    /// <summary>Precopy passes before switching over regardless of the estimate.</summary>
    public int MaxPasses { get; init; } = 30;

    /// <summary>
    /// The longest one write to the destination may block (it stopped reading): then the migration fails, and before
    /// the switchover the guest runs here again. Not a QMP parameter; tests shorten it.
    /// </summary>
    public TimeSpan WriteTimeout { get; init; } = MigrationTimeouts.Default.Write;

    /// <summary>
    /// tls-creds, tls-hostname, tls-authz: TLS on the migration connection (both ends must have it); null: plain. The
    /// source uses it when `migrate` starts, the destination when its source connects.
    /// </summary>
    public MigrationTls? Tls { get; init; }
}

/// <summary>migrate-set-capabilities: which optional behaviours a migration uses.</summary>
public sealed record MigrationCapabilities
{
    /// <summary>"postcopy-ram": the migration may switch to postcopy (migrate-start-postcopy).</summary>
    public bool PostcopyRam { get; init; }

    /// <summary>
    /// "postcopy-minor-faults" (on by default): shared and hugetlbfs blocks use MINOR-fault postcopy when both sides
    /// have it. Received, clean pages then stay in the destination's page cache and a fault on one is resolved
    /// locally with CONTINUE; only stale pages are fetched. Off: MISSING faults only (stale pages are punched out).
    /// </summary>
    public bool PostcopyMinorFaults { get; init; } = true;

    /// <summary>
    /// "postcopy-preempt" (on by default, as QEMU's capability of that name but defaulting on): when both sides have it,
    /// the answers to page requests travel on a second connection, so they never queue behind the background push.
    /// The push can then use large batches and a large socket buffer without making a faulting vCPU wait longer.
    /// </summary>
    public bool PostcopyPreempt { get; init; } = true;

    /// <summary>
    /// "postcopy-shared-memory" (on by default; this VMM's own): with a preempt channel over a Unix socket (both ends on
    /// one host), the background push carries page data through a shared-memory ring instead of the socket, so each
    /// byte is copied twice on its way instead of four times. Both sides must have it on.
    /// </summary>
    public bool PostcopySharedMemory { get; init; } = true;

    /// <summary>
    /// "sparse-pages" (on by default; this VMM's own): the postcopy push and precopy's last pass (guest stopped, no
    /// xbzrle) send a 4 KiB page that is mostly zeros as its zero-run encoding (a sparse page) instead of 4096 bytes.
    /// Only the source needs it; every destination takes sparse pages. Off: every data page goes whole.
    /// </summary>
    public bool SparsePages { get; init; } = true;

    /// <summary>
    /// "xbzrle" (off by default, as QEMU's): precopy sends a page sent before as a delta against the bytes sent then,
    /// kept in a cache of xbzrle-cache-size bytes. Only the source needs it; every destination takes deltas.
    /// </summary>
    public bool Xbzrle { get; init; }

    /// <summary>"events": MIGRATION events on state changes (always sent here; kept for QMP compatibility).</summary>
    public bool Events { get; init; } = true;
}
