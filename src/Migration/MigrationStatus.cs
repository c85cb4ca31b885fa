namespace Vmm.Migration;

/// <summary>Migration states with QEMU's query-migrate names (<see cref="MigrationStatusNames.ToQmp"/>).</summary>
public enum MigrationStatus
{
    None,
    Setup,
    Active,
    PostcopyActive,
    PostcopyPaused,

    /// <summary>A paused postcopy reconnecting: the handshake of a resume (source) or of migrate-recover (destination).</summary>
    PostcopyRecover,
    Completed,
    Failed,
    Cancelling,
    Cancelled,
}

public static class MigrationStatusNames
{
    public static string ToQmp(this MigrationStatus status) => status switch
    {
        MigrationStatus.None => "none",
        MigrationStatus.Setup => "setup",
        MigrationStatus.Active => "active",
        MigrationStatus.PostcopyActive => "postcopy-active",
        MigrationStatus.PostcopyPaused => "postcopy-paused",
        MigrationStatus.PostcopyRecover => "postcopy-recover",
        MigrationStatus.Completed => "completed",
        MigrationStatus.Failed => "failed",
        MigrationStatus.Cancelling => "cancelling",
        MigrationStatus.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(status)),
    };

    public static bool IsFinished(this MigrationStatus status) =>
        status is MigrationStatus.Completed or MigrationStatus.Failed or MigrationStatus.Cancelled;
}
