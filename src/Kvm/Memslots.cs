using Vmm.Accelerator;
using Vmm.Ram;

namespace Vmm.Kvm;

/// <summary>
/// KVM's <see cref="IGuestMemoryMap"/>: mirrors RAM blocks into KVM memslots, each block covered by one slot per
/// contiguous range of its used length that is not an MMIO hole (<see cref="RamHoles"/>), a ROM range
/// (<see cref="RamReadOnlyRanges"/>) being a slot of its own with KVM_MEM_READONLY. Owns dirty logging: KVM
/// logs per slot, this class folds the logs into each block's <see cref="RamBlock.DirtyBitmap"/>, including the log
/// of a slot about to be deleted, so no dirty bit is lost when a block's slots change. KVM has no atomic multi-slot update (seeds/004): callers park the vCPUs around
/// <see cref="Refresh"/>, <see cref="AddHole"/> and <see cref="RemoveHole"/> so the guest never sees a half-applied layout.
/// </summary>
public sealed class Memslots : IGuestMemoryMap, IDisposable
{
    private const ulong LogPageSize = DirtyBitmap.PageSize;

    private readonly KvmVm vm;
    private readonly RamBlockRegistry registry;
    private readonly Dictionary<RamBlock, BlockSlots> blocks = [];
    private readonly RamHoles holes = new();
    private readonly RamReadOnlyRanges readOnly = new();
    private readonly Stack<uint> freeSlotIds = new();
    private readonly object gate = new();
    private uint nextSlotId;
    private bool logging;
    private ulong[] logBuffer = [];

    public Memslots(KvmVm vm, RamBlockRegistry registry)
    {
        this.vm = vm;
        this.registry = registry;
        foreach (RamBlock block in registry.Blocks)
        {
            Add(block);
        }

        registry.BlockAdded += Add;
        registry.BlockRemoved += Remove;
    }

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

    /// <summary>The slots currently covering a block, as (slot id, offset in block, length).</summary>
    public IReadOnlyList<(uint Slot, ulong Offset, ulong Length)> SlotsOf(RamBlock block)
    {
        lock (gate)
        {
            return blocks[block].Slots.Select(s => (s.Id, s.Offset, s.Length)).ToArray();
        }
    }

    /// <summary>Re-derives a block's slots after its used length changed. vCPUs must be parked.</summary>
    public void Refresh(RamBlock block)
    {
        lock (gate)
        {
            Rebuild(blocks[block]);
        }
    }

    /// <summary>Takes [offset, offset+length) of a block out of the guest's RAM (it becomes MMIO). vCPUs must be parked.</summary>
    public void AddHole(RamBlock block, ulong offset, ulong length)
    {
        lock (gate)
        {
            holes.Add(block, offset, length);
            Rebuild(blocks[block]);
        }
    }

    /// <summary>Gives a hole back to RAM. vCPUs must be parked.</summary>
    public void RemoveHole(RamBlock block, ulong offset)
    {
        lock (gate)
        {
            holes.Remove(block, offset);
            Rebuild(blocks[block]);
        }
    }

    /// <summary>
    /// A ROM range: its own slot with KVM_MEM_READONLY, so guest stores exit as MMIO writes and never reach the
    /// memory, while the VMM keeps writing it through the block's mapping. Without KVM_CAP_READONLY_MEM the range
    /// stays ordinary RAM and this returns false. vCPUs must be parked.
    /// </summary>
    public bool AddReadOnly(RamBlock block, ulong offset, ulong length)
    {
        if (!vm.SupportsReadOnlyMemory)
        {
            return false;
        }

        lock (gate)
        {
            readOnly.Add(block, offset, length);
            Rebuild(blocks[block]);
            return true;
        }
    }

    /// <summary>KVM reads guest memory through the host mapping on every access: nothing is cached to forget.</summary>
    public void ContentChanged(RamBlock block, ulong offset, ulong length)
    {
    }

    /// <summary>Turns on dirty logging for every slot; block bitmaps start clean.</summary>
    public void StartDirtyLogging()
    {
        lock (gate)
        {
            logging = true;
            foreach (BlockSlots slots in blocks.Values)
            {
                slots.Block.DirtyBitmap.ClearAll();
                foreach (Slot slot in slots.Slots)
                {
                    SetRegion(slots.Block, slot);
                }
            }
        }
    }

    public void StopDirtyLogging()
    {
        lock (gate)
        {
            logging = false;
            foreach (BlockSlots slots in blocks.Values)
            {
                foreach (Slot slot in slots.Slots)
                {
                    SetRegion(slots.Block, slot);
                }
            }
        }
    }

    /// <summary>Fetches (and clears) KVM's log of every slot into the block bitmaps.</summary>
    public void SyncDirtyLog()
    {
        lock (gate)
        {
            if (!logging)
            {
                return;
            }

            foreach (BlockSlots slots in blocks.Values)
            {
                foreach (Slot slot in slots.Slots)
                {
                    Harvest(slots.Block, slot);
                }
            }
        }
    }

    private void Add(RamBlock block)
    {
        lock (gate)
        {
            var slots = new BlockSlots(block);
            blocks[block] = slots;
            if (logging)
            {
                block.DirtyBitmap.ClearAll();
            }

            Rebuild(slots);
        }
    }

    private void Remove(RamBlock block)
    {
        lock (gate)
        {
            holes.Forget(block);
            readOnly.Forget(block);
            if (blocks.Remove(block, out BlockSlots? slots))
            {
                foreach (Slot slot in slots.Slots)
                {
                    DeleteSlot(slots.Block, slot);
                }
            }
        }
    }

    /// <summary>Deletes the block's slots (harvesting their logs first) and creates the ones its layout needs now.</summary>
    private void Rebuild(BlockSlots slots)
    {
        foreach (Slot slot in slots.Slots)
        {
            if (logging)
            {
                Harvest(slots.Block, slot);
            }

            DeleteSlot(slots.Block, slot);
        }

        slots.Slots.Clear();
        foreach ((ulong offset, ulong length) in holes.MappedRanges(slots.Block))
        {
            foreach ((ulong pieceOffset, ulong pieceLength, bool pieceReadOnly) in readOnly.Split(slots.Block, offset, length))
            {
                AddSlot(slots, pieceOffset, pieceLength, pieceReadOnly);
            }
        }
    }

    private void AddSlot(BlockSlots slots, ulong offset, ulong length, bool isReadOnly)
    {
        if (length == 0)
        {
            return;
        }

        uint id;
        if (freeSlotIds.Count > 0)
        {
            id = freeSlotIds.Pop();
        }
        else
        {
            if ((int)nextSlotId >= vm.MaxMemslots)
            {
                throw new InvalidOperationException($"KVM allows {vm.MaxMemslots} memslots; RAM block '{slots.Block.Name}' needs one more");
            }

            id = nextSlotId++;
        }

        var slot = new Slot(id, offset, length, isReadOnly);
        SetRegion(slots.Block, slot);
        slots.Slots.Add(slot);
    }

    // The guest cannot dirty a read-only slot (only the VMM writes it, and marks the block's bitmap itself), so it
    // logs nothing and is never harvested.
    private void SetRegion(RamBlock block, Slot slot) =>
        vm.SetUserMemoryRegion(slot.Id, block.GuestBase + slot.Offset, slot.Length, block.HostAddressOf(slot.Offset), logging && !slot.ReadOnly, slot.ReadOnly);

    private void DeleteSlot(RamBlock block, Slot slot)
    {
        vm.SetUserMemoryRegion(slot.Id, block.GuestBase + slot.Offset, 0, block.HostAddress, logDirtyPages: false);
        freeSlotIds.Push(slot.Id);
    }

    private void Harvest(RamBlock block, Slot slot)
    {
        if (slot.ReadOnly)
        {
            return;
        }

        ulong pages = slot.Length / LogPageSize;
        int words = (int)((pages + 63) / 64);
        if (logBuffer.Length < words)
        {
            logBuffer = new ulong[words];
        }

        Array.Clear(logBuffer, 0, words);
        vm.GetDirtyLog(slot.Id, logBuffer);
        block.DirtyBitmap.MergeWords(slot.Offset / LogPageSize, logBuffer.AsSpan(0, words), pages);
    }

    public void Dispose()
    {
        registry.BlockAdded -= Add;
        registry.BlockRemoved -= Remove;
    }

    private readonly record struct Slot(uint Id, ulong Offset, ulong Length, bool ReadOnly);

    private sealed class BlockSlots(RamBlock block)
    {
        public RamBlock Block { get; } = block;

        public List<Slot> Slots { get; } = [];
    }
}
