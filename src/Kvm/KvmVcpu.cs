using System.Runtime.InteropServices;
using Vmm.Accelerator;
using Vmm.Accelerator.State;
using Vmm.Linux;
using Vmm.Linux.Kvm;

namespace Vmm.Kvm;

/// <summary>
/// One KVM vCPU: its fd, its shared kvm_run page, KVM_RUN with exit dispatch, the kick (immediate_exit plus
/// <see cref="VcpuKick.Signal"/>) and typed register access. KVM serializes vCPU ioctls on a per-vCPU mutex, so
/// register reads from other threads are safe while the vCPU is parked (not inside KVM_RUN).
/// </summary>
public sealed unsafe class KvmVcpu : IVcpu
{
    /// <summary>MSRs worth carrying for these guests; those the host's KVM cannot read are left out of the state.</summary>
    private static readonly uint[] CandidateMsrs = [.. ModelSpecificRegister.Migrated];

    private readonly FileDescriptor fd;
    private readonly int mmapSize;
    private readonly IVcpuIo io;
    private int threadId;
    private bool singleStep;
    private IInterruptSource? interrupts;

    internal KvmVcpu(int id, FileDescriptor fd, int mmapSize, IVcpuIo io)
    {
        Id = id;
        this.fd = fd;
        this.mmapSize = mmapSize;
        this.io = io;
        Run = (KvmRun*)Mman.Map(0, (ulong)mmapSize, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_SHARED, fd.Value);
    }

    public int Id { get; }

    /// <summary>The kvm_run page. Only the vCPU thread reads exits from it; any thread may set immediate_exit.</summary>
    public KvmRun* Run { get; }

    /// <summary>KVM_RUN once. Returns 0, or the errno (EINTR after a kick).</summary>
    public int RunOnce()
    {
        if (Ioctl.Invoke(fd.Value, KvmIoctls.Run, 0) == 0)
        {
            return 0;
        }

        return Marshal.GetLastPInvokeError();
    }

    public void AttachThread()
    {
        // The kick signal stays blocked on this thread except inside KVM_RUN (VcpuKick).
        ulong previousMask = Signals.ChangeThreadMask(Signals.SIG_BLOCK, VcpuKick.Mask);
        SetSignalMask(previousMask & ~VcpuKick.Mask);
        Volatile.Write(ref threadId, Unistd.GetTid());
        if (singleStep)
        {
            SetGuestDebug(KvmGuestDebug.Enable | KvmGuestDebug.SingleStep);
        }
    }

    public void ConnectInterrupts(IInterruptSource source) => interrupts = source;

    VcpuExit IVcpu.Run()
    {
        OfferInterrupt();
        int errno = RunOnce();
        if (errno == 0)
        {
            return HandleExit();
        }

        if (errno is Errno.EINTR or Errno.EAGAIN)
        {
            Run->ImmediateExit = 0;
            Signals.TryConsumePending(VcpuKick.Signal);
            return VcpuExit.Interrupted;
        }

        return RunFailed(errno);
    }

    /// <summary>
    /// The userspace-irqchip protocol (api.rst, KVM_INTERRUPT): with an interrupt waiting, inject it if the last exit
    /// said the guest can take one now, else ask KVM to exit as soon as it can (KVM_EXIT_IRQ_WINDOW_OPEN).
    /// </summary>
    private void OfferInterrupt()
    {
        KvmRun* run = Run;
        if (interrupts is not { InterruptPending: true } line)
        {
            run->RequestInterruptWindow = 0;
            return;
        }

        if (run->ReadyForInterruptInjection != 0 && run->IfFlag != 0)
        {
            uint vector = line.AcknowledgeInterrupt();
            if (Ioctl.Invoke(fd.Value, KvmIoctls.Interrupt, (nint)(&vector)) == 0)
            {
                run->RequestInterruptWindow = 0;
                return;
            }
        }

        run->RequestInterruptWindow = 1;
    }

    public void Kick()
    {
        Run->ImmediateExit = 1;
        Thread.MemoryBarrier();
        int tid = Volatile.Read(ref threadId);
        if (tid != 0)
        {
            Signals.SendToThread(tid, VcpuKick.Signal);
        }
    }

    public void AcknowledgeKick()
    {
        Run->ImmediateExit = 0;
        Signals.TryConsumePending(VcpuKick.Signal);
    }

    /// <summary>
    /// KVM finishes an I/O or MMIO exit (stores an IN's data into the register, advances a string I/O) only on the
    /// next KVM_RUN, and that pending work is invisible in the registers userspace reads (api.rst, KVM_RUN). Re-enter
    /// once with immediate_exit set: KVM completes the operation and returns EINTR without running guest code.
    /// Completing a string I/O may produce more I/O exits, handled here like any other.
    /// </summary>
    public VcpuExit? CompletePendingExit()
    {
        while (true)
        {
            Run->ImmediateExit = 1;
            int errno = RunOnce();
            if (errno is Errno.EINTR or Errno.EAGAIN)
            {
                return null;
            }

            if (errno != 0)
            {
                return RunFailed(errno);
            }

            VcpuExit exit = HandleExit();
            if (exit.Kind is not (VcpuExitKind.Io or VcpuExitKind.Interrupted))
            {
                return exit;
            }
        }
    }

    public bool SingleStep
    {
        get => singleStep;
        set => singleStep = value;
    }

    private VcpuExit RunFailed(int errno) =>
        new(VcpuExitKind.HostError, Detail: $"KVM_RUN failed on vCPU {Id}: {new LinuxException("KVM_RUN", errno).Message}");

    private VcpuExit HandleExit()
    {
        KvmRun* run = Run;
        switch (run->ExitReason)
        {
            case KvmExitReason.Io:
                HandleIo(run);
                return VcpuExit.Io;

            case KvmExitReason.Mmio:
                HandleMmio(run);
                return VcpuExit.Io;

            case KvmExitReason.Hlt:
                return new VcpuExit(VcpuExitKind.Halt, InterruptsEnabled: run->IfFlag != 0);

            case KvmExitReason.Debug:
                return VcpuExit.Debug;

            case KvmExitReason.Intr:
            case KvmExitReason.IrqWindowOpen:
                return VcpuExit.Interrupted;

            case KvmExitReason.Shutdown:
                return new VcpuExit(VcpuExitKind.Shutdown, Detail: "triple fault: the guest shut down (KVM_EXIT_SHUTDOWN)");

            case KvmExitReason.FailEntry:
                return new VcpuExit(VcpuExitKind.Failed, Detail: $"VM entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason 0x{run->FailEntry.HardwareEntryFailureReason:x})");

            case KvmExitReason.InternalError:
                return new VcpuExit(VcpuExitKind.Failed, Detail: $"KVM internal error (KVM_EXIT_INTERNAL_ERROR, suberror {run->Internal.Suberror})");

            case KvmExitReason.SystemEvent:
                return new VcpuExit(VcpuExitKind.SystemEvent, Detail: "guest requested a system event (shutdown/reset)");

            default:
                return new VcpuExit(VcpuExitKind.Failed, Detail: $"unexpected KVM exit reason {(uint)run->ExitReason}");
        }
    }

    private void HandleIo(KvmRun* run)
    {
        KvmRunIo exit = run->Io;
        byte* data = (byte*)run + exit.DataOffset;
        int size = exit.Size;

        // String I/O (rep ins/outs) arrives as Count items back to back.
        for (uint i = 0; i < exit.Count; i++)
        {
            var item = new Span<byte>(data + (i * (uint)size), size);
            if (exit.Direction == KvmRun.IoDirectionOut)
            {
                io.PortWrite(exit.Port, item);
            }
            else
            {
                io.PortRead(exit.Port, item);
            }
        }
    }

    private void HandleMmio(KvmRun* run)
    {
        var data = new Span<byte>(run->Mmio.Data, (int)Math.Min(run->Mmio.Len, 8u));
        if (run->Mmio.IsWrite != 0)
        {
            io.MmioWrite(run->Mmio.PhysAddr, data);
        }
        else
        {
            io.MmioRead(run->Mmio.PhysAddr, data);
        }
    }

    public VcpuRegisters GetRegisters() => KvmStateConversion.ToRegisters(GetRegs(), GetSregs());

    public VcpuState GetState()
    {
        VcpuRegisters registers = GetRegisters();

        // One KVM_GET_MSRS for all of them (this runs in a migration's downtime, an ioctl costs microseconds here);
        // KVM stops at the first MSR it cannot read, and then each is asked for alone so the readable ones are kept.
        var msrs = new List<KvmMsrEntry>(GetMsrs(CandidateMsrs));
        if (msrs.Count != CandidateMsrs.Length)
        {
            msrs.Clear();
            foreach (uint index in CandidateMsrs)
            {
                msrs.AddRange(GetMsrs([index]));
            }
        }

        return new VcpuState
        {
            Registers = registers,
            Fpu = KvmStateConversion.ToFpu(GetFpu()),
            Xcrs = KvmStateConversion.ToXcrs(GetXcrs()),
            Msrs = [.. msrs.Select(m => new ModelSpecificRegister(m.Index, m.Data))],
            Events = KvmStateConversion.ToEvents(GetVcpuEvents()),
            MpState = (MpState)GetMpState().MpState,
        };
    }

    /// <summary>Loads a state in the order KVM needs (sregs before MSRs, events last).</summary>
    public void SetState(VcpuState state)
    {
        (KvmRegs regs, KvmSregs sregs) = KvmStateConversion.FromRegisters(state.Registers);
        SetSregs(sregs);
        SetRegs(regs);
        SetFpu(KvmStateConversion.FromFpu(state.Fpu));
        if (state.Xcrs.Count > 0)
        {
            SetXcrs(KvmStateConversion.FromXcrs(state.Xcrs));
        }

        if (state.Msrs.Count > 0)
        {
            SetMsrs([.. state.Msrs.Select(m => new KvmMsrEntry { Index = m.Index, Data = m.Value })]);
        }

        SetVcpuEvents(KvmStateConversion.FromEvents(state.Events));
        // Without an in-kernel irqchip KVM accepts only RUNNABLE (api.rst, KVM_SET_MP_STATE): a vCPU halted with
        // interrupts on (the software CPU reports it so) sleeps in the VMM's runner instead, and on KVM it resumes
        // past its HLT, as after a KVM_EXIT_HLT here.
        MpState mpState = state.MpState == MpState.Halted ? MpState.Runnable : state.MpState;
        SetMpState(new KvmMpState { MpState = (uint)mpState });
    }

    public KvmRegs GetRegs()
    {
        KvmRegs regs = default;
        Ioctl.Checked(fd, KvmIoctls.GetRegs, ref regs, "KVM_GET_REGS");
        return regs;
    }

    public void SetRegs(KvmRegs regs) => Ioctl.Checked(fd, KvmIoctls.SetRegs, ref regs, "KVM_SET_REGS");

    public KvmSregs GetSregs()
    {
        KvmSregs sregs = default;
        Ioctl.Checked(fd, KvmIoctls.GetSregs, ref sregs, "KVM_GET_SREGS");
        return sregs;
    }

    public void SetSregs(KvmSregs sregs) => Ioctl.Checked(fd, KvmIoctls.SetSregs, ref sregs, "KVM_SET_SREGS");

    public KvmFpu GetFpu()
    {
        KvmFpu fpu = default;
        Ioctl.Checked(fd, KvmIoctls.GetFpu, ref fpu, "KVM_GET_FPU");
        return fpu;
    }

    public void SetFpu(KvmFpu fpu) => Ioctl.Checked(fd, KvmIoctls.SetFpu, ref fpu, "KVM_SET_FPU");

    public KvmXcrs GetXcrs()
    {
        KvmXcrs xcrs = default;
        Ioctl.Checked(fd, KvmIoctls.GetXcrs, ref xcrs, "KVM_GET_XCRS");
        return xcrs;
    }

    public void SetXcrs(KvmXcrs xcrs) => Ioctl.Checked(fd, KvmIoctls.SetXcrs, ref xcrs, "KVM_SET_XCRS");

    public KvmVcpuEvents GetVcpuEvents()
    {
        KvmVcpuEvents events = default;
        Ioctl.Checked(fd, KvmIoctls.GetVcpuEvents, ref events, "KVM_GET_VCPU_EVENTS");
        return events;
    }

    public void SetVcpuEvents(KvmVcpuEvents events) => Ioctl.Checked(fd, KvmIoctls.SetVcpuEvents, ref events, "KVM_SET_VCPU_EVENTS");

    public KvmMpState GetMpState()
    {
        KvmMpState state = default;
        Ioctl.Checked(fd, KvmIoctls.GetMpState, ref state, "KVM_GET_MP_STATE");
        return state;
    }

    public void SetMpState(KvmMpState state) => Ioctl.Checked(fd, KvmIoctls.SetMpState, ref state, "KVM_SET_MP_STATE");

    /// <summary>KVM_GET_MSRS for the given indices; returns (index, value) for each MSR KVM could read.</summary>
    public KvmMsrEntry[] GetMsrs(ReadOnlySpan<uint> indices)
    {
        int size = sizeof(KvmMsrsHeader) + (indices.Length * sizeof(KvmMsrEntry));
        byte* buffer = stackalloc byte[size];
        new Span<byte>(buffer, size).Clear();
        ((KvmMsrsHeader*)buffer)->NMsrs = (uint)indices.Length;
        var entries = (KvmMsrEntry*)(buffer + sizeof(KvmMsrsHeader));
        for (int i = 0; i < indices.Length; i++)
        {
            entries[i].Index = indices[i];
        }

        // The result is the number of MSRs read; KVM stops at the first one it cannot read.
        int read = Ioctl.Checked(fd, KvmIoctls.GetMsrs, (nint)buffer, "KVM_GET_MSRS");
        return new ReadOnlySpan<KvmMsrEntry>(entries, read).ToArray();
    }

    public void SetMsrs(ReadOnlySpan<KvmMsrEntry> msrs)
    {
        int size = sizeof(KvmMsrsHeader) + (msrs.Length * sizeof(KvmMsrEntry));
        byte* buffer = stackalloc byte[size];
        ((KvmMsrsHeader*)buffer)->NMsrs = (uint)msrs.Length;
        ((KvmMsrsHeader*)buffer)->Pad = 0;
        msrs.CopyTo(new Span<KvmMsrEntry>(buffer + sizeof(KvmMsrsHeader), msrs.Length));
        int written = Ioctl.Checked(fd, KvmIoctls.SetMsrs, (nint)buffer, "KVM_SET_MSRS");
        if (written != msrs.Length)
        {
            throw new InvalidOperationException($"KVM_SET_MSRS accepted {written} of {msrs.Length} MSRs (index 0x{msrs[written].Index:x} refused)");
        }
    }

    public void SetCpuid(byte[] cpuid2)
    {
        fixed (byte* pointer = cpuid2)
        {
            Ioctl.Checked(fd, KvmIoctls.SetCpuid2, (nint)pointer, "KVM_SET_CPUID2");
        }
    }

    /// <summary>The signal mask in force while this vCPU is inside KVM_RUN (and only then).</summary>
    public void SetSignalMask(ulong mask)
    {
        var block = new KvmSignalMask { Len = Signals.KernelSigsetSize, Sigset = mask };
        Ioctl.Checked(fd, KvmIoctls.SetSignalMask, ref block, "KVM_SET_SIGNAL_MASK");
    }

    public void SetGuestDebug(uint control)
    {
        var debug = new KvmGuestDebug { Control = control };
        Ioctl.Checked(fd, KvmIoctls.SetGuestDebug, ref debug, "KVM_SET_GUEST_DEBUG");
    }

    public void Dispose()
    {
        Mman.Unmap((nint)Run, (ulong)mmapSize);
        fd.Dispose();
    }
}
