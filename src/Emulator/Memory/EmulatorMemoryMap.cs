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
        for (ulong page = 0; page < count; page++)
        {
            // Most pages are clean: test eight bytes at a time before touching any.
            if ((page & 7) == 0 && page + 8 <= count && *(ulong*)(map + first + page) == 0)
            {
                page += 7;
                continue;
            }

            if (map[first + page] != 0 && Interlocked.Exchange(ref map[first + page], 0) != 0)
            {
                into?.Set(page);
            }
        }
    }

    private void OnBlockRemoved(RamBlock block)
    {
        Physical.Forget(block, 0, block.MaxLength);
        Physical.Holes.Forget(block);
    }

    private void OnBlockResized(RamBlock block, ulong previousUsedLength) =>
        Physical.Forget(block, 0, Math.Max(previousUsedLength, block.UsedLength));

    private void OnRangeReplacing(RamBlock block, ulong offset, ulong length) => Physical.Forget(block, offset, length);
}
