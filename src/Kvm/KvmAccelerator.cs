using Vmm.Accelerator;
using Vmm.Ram;

namespace Vmm.Kvm;

/// <summary>KVM as vmm's accelerator: /dev/kvm opened and checked once, a <see cref="KvmVm"/> per machine.</summary>
public sealed class KvmAccelerator : IAccelerator
{
    private KvmAccelerator(KvmSystem system) => System = system;

    public AcceleratorKind Kind => AcceleratorKind.Kvm;

    public KvmSystem System { get; }

    /// <summary>Opens /dev/kvm and checks that a VM can be made; <see cref="KvmUnavailableException"/> says why not.</summary>
    public static KvmAccelerator Open(string path = KvmSystem.DevicePath)
    {
        KvmSystem system = KvmSystem.Open(path);
        try
        {
            // A device node that opens is not yet a KVM that works (a container can pass one through without it).
            using KvmVm probe = system.CreateVm();
        }
        catch (Linux.LinuxException e)
        {
            system.Dispose();
            throw new KvmUnavailableException($"{path} cannot create a VM: {e.Message}");
        }

        VcpuKick.InitializeProcess();
        return new KvmAccelerator(system);
    }

    public IAcceleratorVm CreateVm(RamBlockRegistry ram) => System.CreateVm(ram);

    public void Dispose() => System.Dispose();
}
