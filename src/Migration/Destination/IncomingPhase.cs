using Vmm.Migration.Stream;

namespace Vmm.Migration.Destination;

/// <summary>
/// Where the destination is in the protocol (docs/migration.md, "Destination states"). Each record is legal only in
/// some phases (<see cref="IncomingPhases.Accepts"/>); anything else is a protocol error, however well formed, because
/// acting on it would start a guest with memory or state that is not the source's (End after a discard), reload a
/// running guest's vCPUs (State or Run after Run), or leak (a second PostcopyAdvise).
/// </summary>
public enum IncomingPhase
{
    /// <summary>Setup accepted; precopy pages, pass ends, and (guest stopped there) state and End.</summary>
    Precopy,

    /// <summary>PostcopyAdvise taken (once): precopy goes on; End may still finish it as a precopy.</summary>
    Advised,

    /// <summary>A PostcopyDiscard arrived: pages are stale here, so End can no longer finish the migration.</summary>
    Discarding,

    /// <summary>PostcopyDiscardSync: RAM is registered with userfaultfd; late discards, then Listen.</summary>
    DiscardSynced,

    /// <summary>PostcopyListen: the state and the first-touch pages, then Run.</summary>
    Listening,

    /// <summary>PostcopyRun: the guest runs here; only pages (and PushDone once) may follow.</summary>
    Running,

    /// <summary>PostcopyPushDone: the answers to the last requests, nothing else.</summary>
    PushDone,
}

/// <summary>The legality table of <see cref="IncomingPhase"/>.</summary>
public static class IncomingPhases
{
    /// <summary>Whether a record of <paramref name="type"/> may arrive on the main stream in <paramref name="phase"/>.</summary>
    public static bool Accepts(this IncomingPhase phase, RecordType type) => type switch
    {
        RecordType.Page => phase is not IncomingPhase.DiscardSynced,
        RecordType.PassEnd => phase is IncomingPhase.Precopy or IncomingPhase.Advised,
        RecordType.State => phase is IncomingPhase.Precopy or IncomingPhase.Advised or IncomingPhase.Listening,
        RecordType.End => phase is IncomingPhase.Precopy or IncomingPhase.Advised,
        RecordType.PostcopyAdvise => phase is IncomingPhase.Precopy,
        RecordType.PostcopyName => phase is IncomingPhase.Advised,
        RecordType.PostcopyDiscard => phase is IncomingPhase.Advised or IncomingPhase.Discarding or IncomingPhase.DiscardSynced,
        RecordType.PostcopyDiscardSync => phase is IncomingPhase.Advised or IncomingPhase.Discarding,
        RecordType.PostcopyListen => phase is IncomingPhase.Advised or IncomingPhase.Discarding or IncomingPhase.DiscardSynced,
        RecordType.PostcopyRun => phase is IncomingPhase.Listening,
        RecordType.PostcopyPushDone => phase is IncomingPhase.Running,

        // Setup is only the first record; the preempt introduction and return-path records never come this way.
        _ => false,
    };

    /// <summary>
    /// The phase after an accepted record of <paramref name="type"/>. (The destination moves to it once it has acted on
    /// the record: Running only once the state is loaded, so a state that does not load fails rather than pauses.)
    /// </summary>
    public static IncomingPhase After(this IncomingPhase phase, RecordType type) => type switch
    {
        RecordType.PostcopyAdvise => IncomingPhase.Advised,
        RecordType.PostcopyDiscard => phase == IncomingPhase.DiscardSynced ? phase : IncomingPhase.Discarding,
        RecordType.PostcopyDiscardSync => IncomingPhase.DiscardSynced,
        RecordType.PostcopyListen => IncomingPhase.Listening,
        RecordType.PostcopyRun => IncomingPhase.Running,
        RecordType.PostcopyPushDone => IncomingPhase.PushDone,
        _ => phase,
    };

    /// <summary>After this phase the guest may run here: a failure pauses instead of failing.</summary>
    public static bool GuestRunsHere(this IncomingPhase phase) => phase is IncomingPhase.Running or IncomingPhase.PushDone;

    /// <summary>The message for a record <paramref name="phase"/> does not accept.</summary>
    public static string Refusal(this IncomingPhase phase, RecordType type) =>
        phase == IncomingPhase.DiscardSynced && type == RecordType.Page
            ? "protocol error: a Page record between PostcopyDiscardSync and PostcopyListen"
            : phase == IncomingPhase.Precopy && type is >= RecordType.PostcopyDiscard and <= RecordType.PostcopyDiscardSync
            ? $"protocol error: {type} without PostcopyAdvise"
            : $"protocol error: unexpected {type} record from the source (destination state {Describe(phase)})";

    private static string Describe(IncomingPhase phase) => phase switch
    {
        IncomingPhase.Precopy => "precopy",
        IncomingPhase.Advised => "postcopy advised",
        IncomingPhase.Discarding => "postcopy discarding",
        IncomingPhase.DiscardSynced => "postcopy discard synced",
        IncomingPhase.Listening => "postcopy listening",
        IncomingPhase.Running => "postcopy running",
        _ => "postcopy push done",
    };
}
