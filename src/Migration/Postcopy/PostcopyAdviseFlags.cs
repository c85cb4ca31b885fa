namespace Vmm.Migration.Postcopy;

/// <summary>The u32 payload of a PostcopyAdvise record: what the source is prepared to do.</summary>
public static class PostcopyAdviseFlags
{
    /// <summary>
    /// The source has the postcopy-minor-faults capability on. The destination then uses MINOR faults for every
    /// shared and hugetlbfs block, if its own capability is on and its kernel has the matching userfaultfd feature.
    /// </summary>
    public const uint MinorFaults = 1;

    /// <summary>
    /// The source has the postcopy-preempt capability on and will open a second connection for the answers to page
    /// requests if the destination agrees (its PostcopyAdviseAccepted carries this bit back, with a token).
    /// </summary>
    public const uint Preempt = 2;

    /// <summary>
    /// With <see cref="Preempt"/>, over a Unix socket: the source offers to push page data through a shared-memory
    /// ring (<see cref="SharedPageRing"/>, capability postcopy-shared-memory). The destination takes it by carrying the
    /// bit back; the ring's memfd then comes with the preempt channel's introduction.
    /// </summary>
    public const uint SharedMemory = 4;

    /// <summary>Bits this version understands; any other bit set is a protocol error.</summary>
    public const uint Known = MinorFaults | Preempt | SharedMemory;
}
