using System.Diagnostics;

namespace Vmm.Migration;

/// <summary>
/// The clock both ends of a migration on one host share. <see cref="Stopwatch"/> timestamps are CLOCK_MONOTONIC on
/// Linux: comparable between processes of one boot of one host and meaningless anywhere else; the boot id tells.
/// With it the postcopy downtime is measured from the source's vCPU stop to the destination's vCPUs running, rather
/// than to the moment the destination's answer reaches the source (which adds a trip and a wake-up).
/// </summary>
public static class HostClock
{
    /// <summary>/proc/sys/kernel/random/boot_id, or <see cref="Guid.Empty"/> where it cannot be read.</summary>
    public static Guid BootId { get; } = ReadBootId();

    /// <summary>A <see cref="Stopwatch"/> timestamp in nanoseconds of the monotonic clock.</summary>
    public static long ToNanoseconds(long stopwatchTimestamp) =>
        Stopwatch.Frequency == 1_000_000_000 ? stopwatchTimestamp : (long)(stopwatchTimestamp * (1e9 / Stopwatch.Frequency));

    private static Guid ReadBootId()
    {
        try
        {
            return Guid.TryParse(File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(), out Guid id) ? id : Guid.Empty;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Guid.Empty;
        }
    }
}
