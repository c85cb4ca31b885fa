using Vmm.Accelerator.State;

namespace Vmm.Accelerator;

/// <summary>
/// One virtual CPU. <see cref="Run"/> executes guest code on the calling thread (the vCPU thread) until an exit;
/// <see cref="Kick"/> makes it return promptly from any thread. The state is read and written only while the vCPU
/// thread is outside <see cref="Run"/> (parked, or the vCPU thread itself).
/// </summary>
public interface IVcpu : IDisposable
{
    int Id { get; }

    /// <summary>
    /// On the vCPU thread, once, before the first <see cref="Run"/>: whatever the accelerator needs of that thread
    /// (KVM: the kick signal's mask).
    /// </summary>
    void AttachThread();

    /// <summary>Runs guest code until the next exit.</summary>
    VcpuExit Run();

    /// <summary>
    /// Any thread: makes a <see cref="Run"/> in progress return <see cref="VcpuExitKind.Interrupted"/> promptly, or
    /// the next one return at once. The run it ends consumes it (or <see cref="AcknowledgeKick"/> does).
    /// </summary>
    void Kick();

    /// <summary>On the vCPU thread, before it parks: the kick has been seen; let the next <see cref="Run"/> run.</summary>
    void AcknowledgeKick();

    /// <summary>
    /// On the vCPU thread, before it parks: finishes any instruction the accelerator left half done (KVM completes an
    /// IN or a string I/O only on the next entry), so that the state others read or set is between instructions.
    /// Returns an exit that must end the machine, or null.
    /// </summary>
    VcpuExit? CompletePendingExit();

    /// <summary>
    /// Wires the external interrupt line (before the first <see cref="Run"/>). Without it the vCPU never sees an
    /// external interrupt. Whoever raises the line must <see cref="Kick"/> a running vCPU so it looks.
    /// </summary>
    void ConnectInterrupts(IInterruptSource source);

    /// <summary>Stop after every instruction with <see cref="VcpuExitKind.Debug"/> (--trace). Set before running.</summary>
    bool SingleStep { get; set; }

    /// <summary>General, segment and control registers: enough for diagnostics, cheaper than <see cref="GetState"/>.</summary>
    VcpuRegisters GetRegisters();

    /// <summary>Everything migration carries: registers, FPU, XCRs, MSRs (the TSC among them), events, MP state.</summary>
    VcpuState GetState();

    /// <summary>Loads a whole state; MSRs not listed keep their values.</summary>
    void SetState(VcpuState state);
}
