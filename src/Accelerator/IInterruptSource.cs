namespace Vmm.Accelerator;

/// <summary>
/// The interrupt controller as a vCPU sees it: the INTR line and the acknowledge cycle. It lives in userspace for
/// both accelerators (KVM without an in-kernel irqchip injects with KVM_INTERRUPT; the software CPU delivers at an
/// instruction boundary), so its state is one device section whichever runs the guest.
/// </summary>
public interface IInterruptSource
{
    /// <summary>An interrupt is waiting (read often, from the vCPU thread: must be cheap).</summary>
    bool InterruptPending { get; }

    /// <summary>The INTA cycle: returns the vector to deliver now and marks it in service.</summary>
    byte AcknowledgeInterrupt();
}
