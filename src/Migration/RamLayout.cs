using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Migration;

/// <summary>One RAM block as the stream describes it. Blocks are matched by name; the index is the stream's shorthand.</summary>
public sealed record RamBlockDescriptor(string Name, ulong GuestBase, ulong UsedLength, ulong MaxLength, ulong PageSize, RamBackend Backend)
{
    public static RamBlockDescriptor Of(RamBlock block) =>
        new(block.Name, block.GuestBase, block.UsedLength, block.MaxLength, block.PageSize, block.Backend);
}

/// <summary>
/// The RAM layout carried by the Setup record. The destination must have the same blocks with the same names,
/// bases, sizes and page sizes; otherwise it refuses before touching guest memory.
/// </summary>
public sealed record RamLayout(IReadOnlyList<RamBlockDescriptor> Blocks)
{
    public static RamLayout Of(RamBlockRegistry registry) => new([.. registry.Blocks.Select(RamBlockDescriptor.Of)]);

    public void Write(RecordWriter writer)
    {
        var payload = writer.Begin(RecordType.Setup);
        payload.U16((ushort)Blocks.Count);
        foreach (RamBlockDescriptor block in Blocks)
        {
            payload.String(block.Name);
            payload.U64(block.GuestBase);
            payload.U64(block.UsedLength);
            payload.U64(block.MaxLength);
            payload.U64(block.PageSize);
            payload.U8((byte)block.Backend);
        }

        payload.Commit();
    }

    public static RamLayout Read(Record record)
    {
        PayloadReader reader = record.Reader();
        int count = reader.U16();
        if (count > RecordLimits.MaxBlocks)
        {
            throw new MigrationStreamException($"corrupt migration stream: a Setup record with {count} RAM blocks (at most {RecordLimits.MaxBlocks})");
        }

        var blocks = new List<RamBlockDescriptor>(count);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
        {
            var block = new RamBlockDescriptor(reader.Name(), reader.U64(), reader.U64(), reader.U64(), reader.U64(), (RamBackend)reader.U8());
            if (!names.Add(block.Name))
            {
                throw new MigrationStreamException($"corrupt migration stream: RAM block '{PeerText.Name(block.Name)}' appears twice in the Setup record");
            }

            if (!Enum.IsDefined(block.Backend))
            {
                throw new MigrationStreamException($"corrupt migration stream: RAM block '{PeerText.Name(block.Name)}' has unknown backend {(byte)block.Backend}");
            }

            blocks.Add(block);
        }

        reader.End();
        return new RamLayout(blocks);
    }

    /// <summary>
    /// What differs between the source's layout (this) and the destination's, one line per problem; empty when
    /// they match. The backend may differ (precopy copies bytes), except where a capability depends on it.
    /// </summary>
    public IReadOnlyList<string> Mismatches(RamLayout local)
    {
        var problems = new List<string>();
        foreach (RamBlockDescriptor remote in Blocks)
        {
            // Every name below came from the peer: printed escaped and cut.
            RamBlockDescriptor source = remote with { Name = PeerText.Name(remote.Name) };
            RamBlockDescriptor? mine = local.Blocks.FirstOrDefault(b => b.Name == remote.Name);
            if (mine is null)
            {
                problems.Add($"RAM block '{source.Name}' ({source.UsedLength >> 20} MiB at 0x{source.GuestBase:x}) does not exist here");
                continue;
            }

            if (mine.GuestBase != source.GuestBase)
            {
                problems.Add($"RAM block '{source.Name}': base 0x{source.GuestBase:x} on the source, 0x{mine.GuestBase:x} here");
            }

            if (mine.MaxLength != source.MaxLength)
            {
                problems.Add($"RAM block '{source.Name}': max size {source.MaxLength} bytes on the source, {mine.MaxLength} here");
            }

            if (source.UsedLength == 0 || source.UsedLength % mine.PageSize != 0)
            {
                problems.Add($"RAM block '{source.Name}': {source.UsedLength} bytes used on the source is not a non-zero multiple of the page size {mine.PageSize}");
            }
            else if (source.UsedLength > mine.MaxLength)
            {
                problems.Add($"RAM block '{source.Name}': {source.UsedLength} bytes used on the source do not fit in {mine.MaxLength} here");
            }
            else if (mine.UsedLength != source.UsedLength && mine.MaxLength == mine.UsedLength)
            {
                problems.Add($"RAM block '{source.Name}': size {source.UsedLength} bytes on the source, {mine.UsedLength} here");
            }

            if (mine.PageSize != source.PageSize)
            {
                problems.Add($"RAM block '{source.Name}': page size {source.PageSize} on the source, {mine.PageSize} here");
            }
        }

        foreach (RamBlockDescriptor extra in local.Blocks.Where(b => Blocks.All(s => s.Name != b.Name)))
        {
            problems.Add($"RAM block '{extra.Name}' exists here but not on the source");
        }

        return problems;
    }
}
