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
            block.Resize(newUsedLength);
        }

        if (oldUsedLength != newUsedLength)
        {
            RaiseResized(block, oldUsedLength);
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
