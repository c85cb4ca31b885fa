using Vmm.Ram;

namespace Vmm.Kvm;

/// <summary>
/// Mirrors the RAM block registry into KVM memslots: one slot per block, covering its used length.
/// </summary>
public sealed class Memslots : IDisposable
{
    private readonly KvmVm vm;
    private readonly RamBlockRegistry registry;
    private readonly Dictionary<RamBlock, uint> slots = [];
    private readonly object gate = new();
    private uint nextSlot;

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

    public uint SlotOf(RamBlock block)
    {
        lock (gate)
        {
            return slots[block];
        }
    }

    private void Add(RamBlock block)
    {
        lock (gate)
        {
            if ((int)nextSlot >= vm.MaxMemslots)
            {
                throw new InvalidOperationException($"KVM allows {vm.MaxMemslots} memslots; RAM block '{block.Name}' needs one more");
            }

            uint slot = nextSlot++;
            vm.SetUserMemoryRegion(slot, block.GuestBase, block.UsedLength, block.HostAddress, logDirtyPages: false);
            slots[block] = slot;
        }
    }

    private void Remove(RamBlock block)
    {
        lock (gate)
        {
            if (slots.Remove(block, out uint slot))
            {
                vm.SetUserMemoryRegion(slot, block.GuestBase, 0, block.HostAddress, logDirtyPages: false);
            }
        }
    }

    public void Dispose()
    {
        registry.BlockAdded -= Add;
        registry.BlockRemoved -= Remove;
    }
}
