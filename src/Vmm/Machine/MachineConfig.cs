using Vmm.Ram;

namespace Vmm.Machine;

/// <summary>What a machine is built from, already validated (see Configuration/RunSettings).</summary>
public sealed record MachineConfig
{
    public ulong MemorySize { get; init; } = 16 * 1024 * 1024;

    public RamBackend RamBackend { get; init; } = RamBackend.Anonymous;

    public string? MemPath { get; init; }

    public IReadOnlyList<Configuration.RamBlockOption> RamBlocks { get; init; } = [];

    public bool Trace { get; init; }

    /// <summary>The built-in BIOS (--bios vmm): ROM, vector table, data area and services before the boot sector.</summary>
    public bool Bios { get; init; }

    /// <summary>int 13h writes go through to the image file.</summary>
    public bool DiskWritable { get; init; }

    /// <summary>Whether KVM works on this host, whichever accelerator runs the guest (QMP query-kvm's "present").</summary>
    public bool KvmPresent { get; init; }
}
