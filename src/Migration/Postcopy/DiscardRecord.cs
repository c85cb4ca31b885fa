using Vmm.Migration.Stream;

namespace Vmm.Migration.Postcopy;

/// <summary>
/// PostcopyDiscard: block index (u16), range count (u32), then (offset u64, length u64) byte ranges of that block
/// whose copy on the destination is stale or missing. Large sets span several records.
/// </summary>
public static class DiscardRecord
{
    public const int MaxRangesPerRecord = 64 * 1024;

    public static void Write(RecordWriter writer, int blockIndex, IReadOnlyList<(ulong Offset, ulong Length)> ranges)
    {
        for (int start = 0; start < ranges.Count; start += MaxRangesPerRecord)
        {
            int count = Math.Min(MaxRangesPerRecord, ranges.Count - start);
            var payload = writer.Begin(RecordType.PostcopyDiscard);
            payload.U16((ushort)blockIndex);
            payload.U32((uint)count);
            for (int i = start; i < start + count; i++)
            {
                payload.U64(ranges[i].Offset);
                payload.U64(ranges[i].Length);
            }

            payload.Commit();
        }
    }

    public static (int BlockIndex, List<(ulong Offset, ulong Length)> Ranges) Read(Record record)
    {
        PayloadReader reader = record.Reader();
        int block = reader.U16();
        uint count = reader.U32();
        if (count > MaxRangesPerRecord)
        {
            throw new MigrationStreamException($"corrupt migration stream: {count} discard ranges in one record");
        }

        var ranges = new List<(ulong, ulong)>((int)count);
        for (uint i = 0; i < count; i++)
        {
            ranges.Add((reader.U64(), reader.U64()));
        }

        reader.End();
        return (block, ranges);
    }
}
