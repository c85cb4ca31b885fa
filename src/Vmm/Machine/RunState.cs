namespace Vmm.Machine;

/// <summary>The machine's run state as users see it (QMP query-status names in <see cref="RunStateNames"/>).</summary>
public enum RunState
{
    /// <summary>Created, not started yet (QMP "prelaunch").</summary>
    Prelaunch,
    Running,

    /// <summary>Stopped by the user (QMP "paused").</summary>
    Paused,

    /// <summary>Waiting for an incoming migration (QMP "inmigrate").</summary>
    InMigrate,

    /// <summary>Stopped for the last phase of an outgoing migration (QMP "finish-migrate").</summary>
    FinishMigrate,

    /// <summary>Outgoing migration completed; the guest lives elsewhere now (QMP "postmigrate").</summary>
    PostMigrate,

    /// <summary>The guest powered off, crashed or was told to quit (QMP "shutdown").</summary>
    Shutdown,
}

public static class RunStateNames
{
    public static string ToQmp(this RunState state) => state switch
    {
        RunState.Prelaunch => "prelaunch",
        RunState.Running => "running",
        RunState.Paused => "paused",
        RunState.InMigrate => "inmigrate",
        RunState.FinishMigrate => "finish-migrate",
        RunState.PostMigrate => "postmigrate",
        RunState.Shutdown => "shutdown",
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };
}
