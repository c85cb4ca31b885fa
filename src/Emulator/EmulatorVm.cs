using Vmm.Accelerator;
using Vmm.Emulator.Memory;
using Vmm.Emulator.Processor;
using Vmm.Ram;

namespace Vmm.Emulator;

/// <summary>
/// A guest on the software CPU: its page map of guest RAM (<see cref="EmulatorMemoryMap"/>) and its one vCPU. The
/// decoded-code cache and page tables belong to the map and are not shared between threads, so a VM has one vCPU.
/// </summary>
public sealed class EmulatorVm : IAcceleratorVm
{
    private readonly EmulatorMemoryMap memory;
    private EmulatorVcpu? vcpu;

    public EmulatorVm(RamBlockRegistry ram) => memory = new EmulatorMemoryMap(ram);

    public IGuestMemoryMap Memory => memory;

    public IVcpu CreateVcpu(int id, IVcpuIo io)
    {
        if (vcpu is not null)
        {
            throw new InvalidOperationException("the software CPU runs one vCPU per VM");
        }

        vcpu = new EmulatorVcpu(id, memory.Physical, io);
        return vcpu;
    }

    /// <summary>
    /// Saves and loads a scratch CPU's state, then runs a short loop of common instructions on it: on a migration
    /// destination the interpreter (decoder, execution loop, the usual handlers) is then compiled before the
    /// switchover, not in the first milliseconds after it, when the guest should already be running.
    /// </summary>
    public void RehearseStateTransfer()
    {
        using var scratchRam = new RamBlockRegistry();
        scratchRam.Add(RamBlock.CreateAnonymous("rehearsal", 0, WarmUpCode.RamSize));
        using var scratchMemory = new GuestPhysicalMemory(scratchRam);
        using var scratch = new EmulatorVcpu(0, scratchMemory, NoIo.Instance);
        scratch.SetState(scratch.GetState());
        WarmUpCode.Run(scratchRam.Blocks[0], scratch);
    }

    public void Dispose()
    {
        vcpu?.Dispose();
        memory.Dispose();
    }

    private sealed class NoIo : IVcpuIo
    {
        public static readonly NoIo Instance = new();

        public void PortRead(ushort port, Span<byte> data) => data.Fill(0xFF);

        public void PortWrite(ushort port, ReadOnlySpan<byte> data)
        {
        }

        public void MmioRead(ulong address, Span<byte> data) => data.Fill(0xFF);

        public void MmioWrite(ulong address, ReadOnlySpan<byte> data)
        {
        }
    }
}
