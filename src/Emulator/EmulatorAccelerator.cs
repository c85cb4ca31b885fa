using Vmm.Accelerator;
using Vmm.Ram;

namespace Vmm.Emulator;

/// <summary>
/// The software CPU as vmm's accelerator: always available, no device node, nothing native. Where KVM is missing
/// it is what runs the guest.
/// </summary>
public sealed class EmulatorAccelerator : IAccelerator
{
    public AcceleratorKind Kind => AcceleratorKind.Emulator;

    public IAcceleratorVm CreateVm(RamBlockRegistry ram) => new EmulatorVm(ram);

    public void Dispose()
    {
    }
}
