using System.Runtime.InteropServices;
using Vmm.Linux;
using Vmm.Linux.Kvm;

namespace Vmm.Kvm;

/// <summary>
/// One KVM vCPU: its fd, its shared kvm_run page, and typed register access. KVM serializes vCPU ioctls on a
/// per-vCPU mutex, so register reads from other threads are safe while the vCPU is paused (not inside KVM_RUN).
/// </summary>
public sealed unsafe class KvmVcpu : IDisposable
{
    private readonly FileDescriptor fd;
    private readonly int mmapSize;

    internal KvmVcpu(int id, FileDescriptor fd, int mmapSize)
    {
        Id = id;
        this.fd = fd;
        this.mmapSize = mmapSize;
        Run = (KvmRun*)Mman.Map(0, (ulong)mmapSize, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_SHARED, fd.Value);
    }

    public int Id { get; }

    /// <summary>The kvm_run page. Only the vCPU thread reads exits from it; any thread may set immediate_exit.</summary>
    public KvmRun* Run { get; }

    /// <summary>The raw fd for the hot KVM_RUN call; valid while this object lives.</summary>
    public int RawFd => fd.Value;

    /// <summary>KVM_RUN once. Returns 0, or the errno (EINTR after a kick).</summary>
    public int RunOnce()
    {
        if (Ioctl.Invoke(fd.Value, KvmIoctls.Run, 0) == 0)
        {
            return 0;
        }

        return Marshal.GetLastPInvokeError();
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
