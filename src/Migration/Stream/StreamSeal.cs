using System.Buffers.Binary;

namespace Vmm.Migration.Stream;

/// <summary>
/// Closes the gap the per-record CRC leaves: a record dropped, duplicated or moved (a broken proxy, a bug) has a valid
/// CRC of its own. Both ends fold every record's CRC, in order, into a running CRC-32C (<see cref="RecordWriter.Digest"/>,
/// <see cref="RecordReader.Digest"/>); End and PostcopyRun — the records after which the destination acts on what it
/// has — carry the writer's count and digest of every record before them, and the destination compares them with its
/// own before it loads any state. (The 12-byte header is compared byte for byte already.) Noise, not an attacker:
/// authenticity needs TLS.
/// </summary>
public static class StreamSeal
{
    /// <summary>u64 record count, u32 digest.</summary>
    public const int Size = 12;

    /// <summary>Writes a <paramref name="type"/> record (End, PostcopyRun) sealing every record written before it.</summary>
    public static void Write(RecordWriter writer, RecordType type)
    {
        Span<byte> payload = stackalloc byte[Size];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, (ulong)writer.Records);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[8..], writer.Digest);
        writer.Write(type, payload);
    }

    /// <summary>
    /// Checks <paramref name="record"/> (just read from <paramref name="reader"/>) against what the reader saw before
    /// it; a mismatch is a corrupt stream.
    /// </summary>
    public static void Check(Record record, RecordReader reader)
    {
        PayloadReader payload = record.Reader();
        ulong count = payload.U64();
        uint digest = payload.U32();
        payload.End();
        if (count != (ulong)reader.RecordsBeforeLast || digest != reader.DigestBeforeLast)
        {
            throw new MigrationStreamException(
                $"corrupt migration stream: the records did not arrive as they were sent ({reader.RecordsBeforeLast} records, digest 0x{reader.DigestBeforeLast:x8} here; {count} records, digest 0x{digest:x8} at the source)");
        }
    }
}
