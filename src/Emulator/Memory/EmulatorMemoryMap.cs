using Vmm.Accelerator;
using Vmm.Ram;

namespace Vmm.Emulator.Memory;

/// <summary>
/// The software CPU's <see cref="IGuestMemoryMap"/>: keeps <see cref="GuestPhysicalMemory"/>'s page tables true to
/// the RAM blocks (a removed, resized, remapped or discarded range is dropped from the tables and its decoded code
/// with it) and owns the dirty log. The CPU marks a byte per guest page after every store to RAM, logging or not;
/// <see cref="SyncDirtyLog"/> harvests the bytes into each block's <see cref="RamBlock.DirtyBitmap"/>, clearing each
/// with an atomic exchange so that a store racing the harvest is seen now or at the next sync, never lost.
/// </summary>
public sealed unsafe class EmulatorMemoryMap : IGuestMemoryMap, IDisposable
{
    private readonly RamBlockRegistry registry;
    private readonly object gate = new();
    private bool logging;

    public EmulatorMemoryMap(RamBlockRegistry registry)
    {
        this.registry = registry;
        Physical = new GuestPhysicalMemory(registry);
        registry.BlockRemoved += OnBlockRemoved;
        registry.BlockResized += OnBlockResized;
        registry.RangeReplacing += OnRangeReplacing;
    }

    public GuestPhysicalMemory Physical { get; }

    public bool IsLogging
    {
        get
        {
            lock (gate)
            {
                return logging;
            }
        }
    }

    public void StartDirtyLogging()
    {
        lock (gate)
        {
            foreach (RamBlock block in registry.Blocks)
            {
                Harvest(block, into: null);
                block.DirtyBitmap.ClearAll();
            }

            logging = true;
        }
    }

    public void StopDirtyLogging()
    {
        lock (gate)
        {
            logging = false;
        }
    }

    public void SyncDirtyLog()
    {
        lock (gate)
        {
            if (!logging)
            {
                return;
            }

            foreach (RamBlock block in registry.Blocks)
            {
                Harvest(block, block.DirtyBitmap);
            }
        }
    }

    public void Refresh(RamBlock block) => Physical.Forget(block, 0, block.MaxLength);

    public void AddHole(RamBlock block, ulong offset, ulong length)
    {
        Physical.Holes.Add(block, offset, length);
        Physical.Forget(block, offset, length);
    }

    public void RemoveHole(RamBlock block, ulong offset)
    {
        Physical.Holes.Remove(block, offset);
        Physical.Forget(block, 0, block.MaxLength);
    }

    /// <summary>The ROM's pages leave the write table: the CPU's slow store path drops what the guest writes there.</summary>
    public bool AddReadOnly(RamBlock block, ulong offset, ulong length)
    {
        Physical.AddReadOnly(block, offset, length);
        return true;
    }

    public void ContentChanged(RamBlock block, ulong offset, ulong length) => Physical.Forget(block, offset, length);

    public void Dispose()
    {
        registry.BlockRemoved -= OnBlockRemoved;
        registry.BlockResized -= OnBlockResized;
        registry.RangeReplacing -= OnRangeReplacing;
        Physical.Dispose();
    }

    /// <summary>Moves (or with no bitmap, clears) the dirty bytes of a block's used pages.</summary>
    private void Harvest(RamBlock block, DirtyBitmap? into)
    {
        byte* map = Physical.DirtyMap;
        ulong first = block.GuestBase >> GuestPhysicalMemory.PageShift;
        ulong count = block.UsedLength / DirtyBitmap.PageSize;
        ulong page = 0;

        // Byte by byte up to an 8-byte boundary of the map: an atomic exchange across a cache line is a split lock.
        for (; page < count && ((first + page) & 7) != 0; page++)
        {
            HarvestPage(map, first, page, into);
        }

        // Then eight pages per exchange. A guest that dirties everything (the migration workload) would otherwise cost
        // one atomic operation per page: about 1 ms for 512 MiB, inside the postcopy switchover.
        Span<ulong> bits = stackalloc ulong[1];
        for (; page + 64 <= count; page += 64)
        {
            ulong* words = (ulong*)(map + first + page);
            ulong mask = 0;
            for (int i = 0; i < 8; i++)
            {
                if (words[i] != 0)
                {
                    mask |= (ulong)NonZeroBytes(Interlocked.Exchange(ref words[i], 0)) << (8 * i);
                }
            }

            if (mask != 0 && into is not null)
            {
                bits[0] = mask;
                into.MergeWords(page, bits, 64);
            }
        }

        for (; page < count; page++)
        {
            HarvestPage(map, first, page, into);
        }
    }

    private static void HarvestPage(byte* map, ulong first, ulong page, DirtyBitmap? into)
    {
        if (map[first + page] != 0 && Interlocked.Exchange(ref map[first + page], 0) != 0)
        {
            into?.Set(page);
        }
    }

    /// <summary>Bit i set where byte i of <paramref name="word"/> is not zero.</summary>
    private static byte NonZeroBytes(ulong word)
    {
        // Fold each byte onto its lowest bit, so that a byte is 1 if it was not zero (the CPU writes 1, but any value counts).
        ulong folded = word | (word >> 4);
        folded |= folded >> 2;
        folded |= folded >> 1;
        folded &= 0x0101_0101_0101_0101;

        // Bytes are now 0 or 1: the multiply gathers byte i's bit into bit 56 + i.
        return (byte)((folded * 0x0102_0408_1020_4080) >> 56);
    }

    private void OnBlockRemoved(RamBlock block)
    {
        Physical.Forget(block, 0, block.MaxLength);
        Physical.Holes.Forget(block);
        Physical.ForgetReadOnly(block);
    }

    private void OnBlockResized(RamBlock block, ulong previousUsedLength) =>
        Physical.Forget(block, 0, Math.Max(previousUsedLength, block.UsedLength));

    private void OnRangeReplacing(RamBlock block, ulong offset, ulong length) => Physical.Forget(block, offset, length);
}
