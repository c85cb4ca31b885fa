using Vmm.Accelerator;
using Vmm.Devices.Interrupts;

namespace Vmm.Machine;

/// <summary>The PIC pair as the vCPU's interrupt line (the accelerator knows no devices).</summary>
public sealed class PicInterruptSource(DualPic pic) : IInterruptSource
{
    public bool InterruptPending => pic.OutputAsserted;

    public byte AcknowledgeInterrupt() => pic.Acknowledge();
}
