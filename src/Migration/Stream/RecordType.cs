namespace Vmm.Migration.Stream;

/// <summary>
/// Record types of the migration stream (docs/migration.md). Values below 0x80 travel source → destination on
/// the main stream; values from 0x80 travel back on the return path.
/// </summary>
public enum RecordType : byte
{
    /// <summary>The RAM layout: every block's name, base, used and max length, page size and backend.</summary>
    Setup = 0x01,

    /// <summary>One host page of one block: data, or the zero flag.</summary>
    Page = 0x02,

    /// <summary>End of a precopy pass (informational: the pass number).</summary>
    PassEnd = 0x03,

    /// <summary>An opaque, versioned state section (a vCPU, a device).</summary>
    State = 0x04,

    /// <summary>Everything has been sent; the destination may run the guest.</summary>
    End = 0x05,

    /// <summary>Postcopy: check page sizes and userfaultfd support before anything irreversible.</summary>
    PostcopyAdvise = 0x10,

    /// <summary>Postcopy: pages the destination holds that are stale and must be discarded.</summary>
    PostcopyDiscard = 0x11,

    /// <summary>Postcopy: register RAM with userfaultfd and start answering faults through page requests.</summary>
    PostcopyListen = 0x12,

    /// <summary>Postcopy: vCPU and device state has been sent; resume the guest on the destination.</summary>
    PostcopyRun = 0x13,

    /// <summary>Postcopy: the source has sent every page.</summary>
    PostcopyPushDone = 0x14,

    /// <summary>Postcopy: the discards so far are all until the guest stops here; answer once they are applied.</summary>
    PostcopyDiscardSync = 0x15,

    /// <summary>
    /// Postcopy preempt: the first record on the second connection, carrying the token the destination gave in
    /// PostcopyAdviseAccepted. After it that connection carries only Page records: the answers to page requests.
    /// </summary>
    PostcopyPreemptChannel = 0x16,

    /// <summary>
    /// Postcopy recovery: the first record after Setup on a new connection to a destination in postcopy-recover. It
    /// carries the migration's name (<see cref="PostcopyName"/>), so a destination refuses any source that is not the
    /// other end of its own paused migration.
    /// </summary>
    PostcopyResume = 0x17,

    /// <summary>
    /// Postcopy: 16 random bytes the source names this migration by, right after PostcopyAdvise (once). A recovery
    /// presents them again; they are known to both sides long before the switchover, so no cut can lose them.
    /// </summary>
    PostcopyName = 0x18,

    /// <summary>Return path: the layout matches; go on.</summary>
    SetupAccepted = 0x81,

    /// <summary>Return path: the destination gives up, with a message for the user.</summary>
    Error = 0x82,

    /// <summary>Return path: the destination has everything and owns the guest now.</summary>
    Complete = 0x83,

    /// <summary>Return path: postcopy page request (block, offset, length).</summary>
    PageRequest = 0x84,

    /// <summary>
    /// Return path: postcopy advise accepted. Payload: nothing, or u32 flags (<c>PostcopyAdviseFlags.Preempt</c>
    /// when the destination takes a preempt channel) followed by its 16-byte token.
    /// </summary>
    PostcopyAdviseAccepted = 0x85,

    /// <summary>Return path: the guest runs on the destination (switchover done).</summary>
    PostcopyRunning = 0x86,

    /// <summary>Return path: every discard before PostcopyDiscardSync has been applied.</summary>
    PostcopyDiscarded = 0x87,

    /// <summary>
    /// Return path, postcopy recovery: one stretch of a block's received bitmap (a bit per host page, set when the page
    /// is here). Pages in flight when the connection broke are lost; this is the truth the source re-sends from.
    /// </summary>
    PostcopyReceivedBitmap = 0x88,

    /// <summary>Return path, postcopy recovery: every block's bitmap has been sent; the requests that follow are re-sent.</summary>
    PostcopyResumeReady = 0x89,
}
