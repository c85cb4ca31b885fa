using Vmm.Accelerator;
using Vmm.Accelerator.State;
using Vmm.Emulator.Memory;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator;

/// <summary>
/// A vCPU on the software CPU: <see cref="Run"/> interprets guest code on the calling thread until a kick, HLT, a
/// triple fault or (single-stepping) one instruction. Port and MMIO accesses reach the machine inside
/// <see cref="Run"/>, synchronously, so no instruction is ever left half done (<see cref="CompletePendingExit"/> has
/// nothing to finish). Paging is outside this CPU's scope: a guest that turns it on stops with a clear failure.
/// </summary>
public sealed class EmulatorVcpu : IVcpu
{
    private readonly Cpu cpu;

    public EmulatorVcpu(int id, GuestPhysicalMemory memory, IVcpuIo io)
    {
        Id = id;
        cpu = new Cpu(memory, io);
    }

    public int Id { get; }

    public bool SingleStep { get; set; }

    /// <summary>The CPU itself, for tests and benchmarks that look inside.</summary>
    internal Cpu Cpu => cpu;

    public void AttachThread()
    {
    }

    public VcpuExit Run()
    {
        return cpu.Run(SingleStep) switch
        {
            CpuStop.Kicked => VcpuExit.Interrupted,
            CpuStop.Halted => new VcpuExit(VcpuExitKind.Halt, InterruptsEnabled: (cpu.FlagsRest & Cpu.IF) != 0),
            CpuStop.Stepped => VcpuExit.Debug,
            CpuStop.ShutDown => new VcpuExit(VcpuExitKind.Shutdown, Detail: "triple fault: an exception could not be delivered"),
            _ => new VcpuExit(VcpuExitKind.Failed, Detail: cpu.FailureDetail),
        };
    }

    public void ConnectInterrupts(IInterruptSource source) => cpu.Interrupts = source;

    public void Kick() => cpu.Kick();

    public void AcknowledgeKick() => cpu.AcknowledgeKick();

    public VcpuExit? CompletePendingExit() => null;

    public VcpuRegisters GetRegisters() => CpuStateConversion.GetRegisters(cpu);

    public VcpuState GetState() => CpuStateConversion.GetState(cpu);

    public void SetState(VcpuState state) => CpuStateConversion.SetState(cpu, state);

    public void Dispose() => cpu.Dispose();
}
