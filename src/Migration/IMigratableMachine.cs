using Vmm.Ram;

namespace Vmm.Migration;

/// <summary>Stopping and starting the guest's vCPUs, for the phases of a migration.</summary>
public interface IRunControl
{
    /// <summary>Stops the vCPUs for the final phase (run state finish-migrate). False if the guest was not running.</summary>
    bool StopForMigration();

    /// <summary>The migration failed or was cancelled before the destination took over: run again.</summary>
    void ResumeAfterFailedMigration();

    /// <summary>The destination owns the guest now: stay stopped (run state postmigrate).</summary>
    void CompleteOutgoingMigration();

    /// <summary>
    /// Destination, once the layout is accepted: get ready to start quickly (vCPU threads created and parked), so
    /// that <see cref="StartIncomingGuest"/> in the downtime only releases them. Runs no guest code.
    /// </summary>
    void PrepareIncomingGuest();

    /// <summary>
    /// Destination: start the guest (postcopy: the state has arrived; precopy: everything has). Returns the
    /// <see cref="System.Diagnostics.Stopwatch"/> timestamp at which it runs — its vCPU threads have left their park,
    /// which can be a cross-CPU wake-up after the call that released them — or the time of return for a guest that
    /// arrives paused.
    /// </summary>
    long StartIncomingGuest();
}

/// <summary>Dirty page tracking over RAM blocks (KVM's dirty log on the machine side).</summary>
public interface IDirtyLog
{
    /// <summary>Starts logging on every block, clearing the block bitmaps.</summary>
    void StartDirtyLogging();

    void StopDirtyLogging();

    /// <summary>Moves what the hypervisor logged since the last sync into each block's <see cref="RamBlock.DirtyBitmap"/>.</summary>
    void SyncDirtyLog();
}

/// <summary>Machine state other than RAM, as opaque sections.</summary>
public interface IStateSections
{
    IReadOnlyList<StateSection> SaveState();

    /// <summary>Loads every section; unknown names or versions throw with a message for the user.</summary>
    void LoadState(IReadOnlyList<StateSection> sections);

    /// <summary>
    /// At the start of a migration, either side: compile and rehearse the code that saves and loads state in the
    /// background (<see cref="JitWarmUp"/>), so the first migration of a process does not compile it inside the
    /// downtime. Never touches the guest; a failure only goes to <paramref name="report"/>.
    /// </summary>
    void PrepareStateTransfer(Action<string> report);
}

/// <summary>Everything migration needs from a machine, and nothing else.</summary>
public interface IMigratableMachine : IRunControl, IDirtyLog, IStateSections
{
    RamBlockRegistry Ram { get; }

    /// <summary>
    /// Source, guest stopped: from the state just saved (<see cref="IStateSections.SaveState"/>), the guest-physical
    /// addresses the vCPUs touch first when they run again (the next instruction, the top of the stack), for a postcopy
    /// switchover to send with the state; several may share a page. Empty where they cannot be told (paging on).
    /// </summary>
    IReadOnlyList<ulong> FirstTouchAddresses(IReadOnlyList<StateSection> saved);

    /// <summary>Destination: adopts the source's used length of a resizable block before any page arrives.</summary>
    void ResizeRamBlock(string name, ulong usedLength);
}
