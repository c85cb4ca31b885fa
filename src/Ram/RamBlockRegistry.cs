namespace Vmm.Ram;

/// <summary>
/// Owns every RAM block of a machine. Subscribers (KVM memslots, migration) learn of additions, removals and
/// resizes through the events, which fire on the thread that made the change.
/// </summary>
public sealed class RamBlockRegistry : IDisposable
{
    private readonly object gate = new();
    private RamBlock[] blocks = [];

    public event Action<RamBlock>? BlockAdded;

    public event Action<RamBlock>? BlockRemoved;

    /// <summary>Raised after a resize with the block and its previous used length.</summary>
    public event Action<RamBlock, ulong>? BlockResized;

    /// <summary>
    /// Raised just before a range of a block is replaced with fresh memory (a remap, or the tail of a shrink), with
    /// the block, offset and length. A subscriber that writes guest memory behind the primary mapping (MINOR-fault
    /// postcopy fills pages through the alias) must stop writing there before the replacement, or it could refill
    /// the fresh range with old content after the guest has written it.
    /// </summary>
    public event Action<RamBlock, ulong, ulong>? RangeReplacing;

    /// <summary>A snapshot, ordered by guest address.</summary>
    public IReadOnlyList<RamBlock> Blocks => Volatile.Read(ref blocks);

    public void Add(RamBlock block)
    {
        lock (gate)
        {
            foreach (RamBlock existing in blocks)
            {
                if (existing.Name == block.Name)
                {
                    throw new InvalidOperationException($"a RAM block named '{block.Name}' already exists");
                }

                if (block.GuestBase < existing.GuestBase + existing.MaxLength && existing.GuestBase < block.GuestBase + block.MaxLength)
                {
                    throw new InvalidOperationException(
                        $"RAM block '{block.Name}' [0x{block.GuestBase:x}, 0x{block.GuestBase + block.MaxLength:x}) overlaps '{existing.Name}' [0x{existing.GuestBase:x}, 0x{existing.GuestBase + existing.MaxLength:x})");
                }
            }

            Volatile.Write(ref blocks, [.. blocks.Append(block).OrderBy(b => b.GuestBase)]);
        }

        BlockAdded?.Invoke(block);
    }

    public void Remove(RamBlock block)
    {
        lock (gate)
        {
            if (!blocks.Contains(block))
            {
                throw new InvalidOperationException($"RAM block '{block.Name}' is not registered");
            }

            Volatile.Write(ref blocks, blocks.Where(b => b != block).ToArray());
        }

        BlockRemoved?.Invoke(block);
        block.Dispose();
    }

    public RamBlock? FindByName(string name) => Array.Find(Volatile.Read(ref blocks), b => b.Name == name);

    public RamBlock? FindByGuestAddress(ulong guestAddress) => Array.Find(Volatile.Read(ref blocks), b => b.ContainsGuestAddress(guestAddress));

    public RamBlock? FindByHostAddress(nint hostAddress) => Array.Find(Volatile.Read(ref blocks), b => b.ContainsHostAddress(hostAddress));

    /// <summary>
    /// Resizes a registered block (<see cref="RamBlock.Resize"/>) and then raises <see cref="BlockResized"/> with the
    /// old used length. The caller pauses the vCPUs around this; subscribers fix memslots and dirty logs themselves.
    /// Nothing is raised when the length does not change.
    /// </summary>
    public void Resize(RamBlock block, ulong newUsedLength)
    {
        ulong oldUsedLength;
        lock (gate)
        {
            if (!blocks.Contains(block))
            {
                throw new InvalidOperationException($"RAM block '{block.Name}' is not registered");
            }

            oldUsedLength = block.UsedLength;
            if (newUsedLength < oldUsedLength && newUsedLength > 0 && newUsedLength % block.PageSize == 0)
            {
                RangeReplacing?.Invoke(block, newUsedLength, oldUsedLength - newUsedLength);
            }

            block.Resize(newUsedLength);
        }

        if (oldUsedLength != newUsedLength)
        {
            RaiseResized(block, oldUsedLength);
        }
    }

    /// <summary>
    /// Replaces a range of a registered block with fresh memory (<see cref="RamBlock.Remap"/>), raising
    /// <see cref="RangeReplacing"/> first. The caller pauses the vCPUs around this.
    /// </summary>
    public void Remap(RamBlock block, ulong offset, ulong length)
    {
        lock (gate)
        {
            if (!blocks.Contains(block))
            {
                throw new InvalidOperationException($"RAM block '{block.Name}' is not registered");
            }

            RangeReplacing?.Invoke(block, offset, length);
            block.Remap(offset, length);
        }
    }

    internal void RaiseResized(RamBlock block, ulong oldUsedLength) => BlockResized?.Invoke(block, oldUsedLength);

    public void Dispose()
    {
        RamBlock[] all;
        lock (gate)
        {
            all = blocks;
            blocks = [];
        }

        foreach (RamBlock block in all)
        {
            block.Dispose();
        }
    }
}
