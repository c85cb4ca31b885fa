namespace Vmm.Migration.Stream;

/// <summary>
/// The largest payload each record type may have (docs/migration.md, Limits). A peer picks every length it sends; the
/// reader checks this one before it waits for the payload, so a length flipped by noise or chosen by a hostile peer is
/// a corrupt stream at once — never a wait for megabytes that will not come, nor a buffer of the peer's choosing.
/// </summary>
public static class RecordLimits
{
    /// <summary>RAM blocks in a Setup record: far more than any machine here has (one or a few).</summary>
    public const int MaxBlocks = 256;

    /// <summary>Bytes of a block or state section name: names are short identifiers (`pc.ram`, `cpu0`).</summary>
    public const int MaxNameBytes = 255;

    /// <summary>State sections in one migration: one per vCPU and device, with room to spare.</summary>
    public const int MaxSections = 64;

    /// <summary>Bytes of one state section's data (a vCPU's is under 6 KiB, the UART's under 1 KiB).</summary>
    public const int MaxSectionBytes = 256 * 1024;

    /// <summary>Bytes of all state sections together, kept until End or PostcopyRun.</summary>
    public const int MaxStateBytes = 4 << 20;

    /// <summary>Characters of an Error record's message.</summary>
    public const int MaxErrorChars = 4000;

    /// <summary>The largest payload <paramref name="type"/> may carry.</summary>
    public static int MaxPayload(RecordType type) => type switch
    {
        RecordType.Setup => 2 + (MaxBlocks * (2 + MaxNameBytes + (4 * 8) + 1)),
        RecordType.Page => RecordReader.MaxPayload,
        RecordType.PassEnd => 4,
        RecordType.State => 2 + MaxNameBytes + 4 + 4 + MaxSectionBytes,
        RecordType.PostcopyAdvise => 4,
        RecordType.PostcopyDiscard => 2 + 4 + (Postcopy.DiscardRecord.MaxRangesPerRecord * 16),
        RecordType.PostcopyPreemptChannel => 16,
        RecordType.End or RecordType.PostcopyRun => StreamSeal.Size,
        RecordType.Error => 2 + (MaxErrorChars * 4),
        RecordType.PageRequest => 2 + 8 + 8,
        RecordType.PostcopyAdviseAccepted => 4 + 16,
        RecordType.PostcopyRunning => 16 + 8,
        RecordType.PostcopyDiscarded => 4,
        RecordType.PostcopyResume or RecordType.PostcopyName => 16,
        RecordType.PostcopyReceivedBitmap => Postcopy.ReceivedBitmapRecord.HeaderBytes + Postcopy.ReceivedBitmapRecord.MaxBitmapBytes,
        RecordType.PostcopyResumeReady => 2,

        // PostcopyListen, PostcopyPushDone, PostcopyDiscardSync, SetupAccepted, Complete.
        _ => 0,
    };
}
