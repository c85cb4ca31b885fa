namespace Vmm.Migration.Postcopy;

/// <summary>
/// The destination's postcopy state machine (DESIGN §5): ADVISE → DISCARD → LISTENING → RUNNING → END, or PAUSED
/// when the connection breaks after the guest started running here.
/// </summary>
public enum PostcopyState
{
    /// <summary>Precopy only so far.</summary>
    None,

    /// <summary>Userfaultfd support checked and a descriptor opened; nothing irreversible yet.</summary>
    Advise,

    /// <summary>Stale pages discarded; the received bitmap knows what is valid here.</summary>
    Discard,

    /// <summary>RAM registered with userfaultfd; the fault thread turns faults into page requests.</summary>
    Listening,

    /// <summary>The guest runs here; pages arrive by request and by the source's background push.</summary>
    Running,

    /// <summary>Every page of every block is here; userfaultfd unregistered.</summary>
    End,

    /// <summary>The connection broke after the switchover: the guest lives here, missing pages wait for recovery.</summary>
    Paused,
}
