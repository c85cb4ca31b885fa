namespace Vmm.Accelerator;

/// <summary>
/// One guest's side of an accelerator: its vCPUs and its view of guest memory. Knows RAM blocks and addresses,
/// nothing of devices: port I/O and MMIO reach the machine through the <see cref="IVcpuIo"/> given to each vCPU.
/// </summary>
public interface IAcceleratorVm : IDisposable
{
    /// <summary>Guest RAM as the vCPUs see it: holes, used lengths, the dirty log.</summary>
    IGuestMemoryMap Memory { get; }

    /// <summary>Creates vCPU <paramref name="id"/>; its port and MMIO accesses go to <paramref name="io"/>.</summary>
    IVcpu CreateVcpu(int id, IVcpuIo io);

    /// <summary>
    /// Saves and loads the state of a scratch vCPU that is not this VM's, so that the code of a migration switchover
    /// is compiled (and the kernel paths warmed) while the guest still runs. Never touches this VM's vCPUs.
    /// </summary>
    void RehearseStateTransfer();
}
