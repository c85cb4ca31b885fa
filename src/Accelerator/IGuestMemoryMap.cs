using Vmm.Ram;

namespace Vmm.Accelerator;

/// <summary>
/// Guest RAM as an accelerator's vCPUs see it (KVM: memslots; the software CPU: its page map), and the dirty log
/// of what they wrote. Every block of the registry is mapped over its used length, except the MMIO holes taken out
/// of it. Layout changes need the vCPUs parked (KVM has no atomic multi-slot update, seeds/004): callers park them
/// around <see cref="Refresh"/>, <see cref="AddHole"/> and <see cref="RemoveHole"/>, and no dirty bit is lost.
/// </summary>
public interface IGuestMemoryMap
{
    bool IsLogging { get; }

    /// <summary>Turns on dirty logging for all guest RAM; block bitmaps start clean.</summary>
    void StartDirtyLogging();

    void StopDirtyLogging();

    /// <summary>Moves what the vCPUs wrote since the last sync into each block's <see cref="RamBlock.DirtyBitmap"/>.</summary>
    void SyncDirtyLog();

    /// <summary>Re-derives a block's mapping after its used length changed. vCPUs must be parked.</summary>
    void Refresh(RamBlock block);

    /// <summary>Takes [offset, offset+length) of a block out of guest RAM (it becomes MMIO). vCPUs must be parked.</summary>
    void AddHole(RamBlock block, ulong offset, ulong length);

    /// <summary>Gives a hole back to RAM. vCPUs must be parked.</summary>
    void RemoveHole(RamBlock block, ulong offset);

    /// <summary>
    /// Makes [offset, offset+length) of a block a ROM (<see cref="RamReadOnlyRanges"/>): the guest reads and runs it,
    /// its stores are dropped (on KVM they exit as MMIO writes, which the caller's bus ignores), the host still writes
    /// it. Page-aligned. Returns false where the accelerator cannot protect memory (the range stays writable). vCPUs
    /// must be parked.
    /// </summary>
    bool AddReadOnly(RamBlock block, ulong offset, ulong length);

    /// <summary>
    /// The host changed or dropped the memory of a range behind the vCPUs (discard, remap): whatever an accelerator
    /// cached about it (decoded code, resident pages) is forgotten.
    /// </summary>
    void ContentChanged(RamBlock block, ulong offset, ulong length);
}
