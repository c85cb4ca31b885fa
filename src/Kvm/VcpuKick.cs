using Vmm.Linux;

namespace Vmm.Kvm;

/// <summary>
/// How a vCPU thread is forced out of KVM_RUN. The kick signal is SIGUSR2: the .NET runtime reserves SIGRTMIN for
/// its own thread activation (GC suspension) and handles SIGINT/SIGQUIT/SIGTERM/SIGCHLD/SIGCONT/SIGWINCH/SIGTTOU, but
/// leaves SIGUSR1/SIGUSR2 alone. A vCPU thread blocks the signal at all times except inside KVM_RUN, where
/// KVM_SET_SIGNAL_MASK unblocks it: a kick therefore interrupts KVM_RUN with EINTR but is never delivered to a
/// handler, and is consumed with sigtimedwait afterwards. kvm_run.immediate_exit covers the window just before entry.
/// The disposition is SIG_IGN so a stray process-directed SIGUSR2 cannot terminate the VMM; blocked signals stay
/// queued regardless of disposition, so kicks still land.
/// </summary>
public static class VcpuKick
{
    public const int Signal = Signals.SIGUSR2;

    private static int initialized;

    public static ulong Mask => Signals.MaskOf(Signal);

    /// <summary>Process-wide, once: make the kick signal harmless to threads that do not block it.</summary>
    public static void InitializeProcess()
    {
        if (Interlocked.Exchange(ref initialized, 1) == 0)
        {
            Signals.Ignore(Signal);
        }
    }
}
