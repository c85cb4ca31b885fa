namespace Vmm.Linux.Kvm;

/// <summary>KVM_CAP_* numbers the VMM checks (linux/kvm.h).</summary>
public enum KvmCapability
{
    UserMemory = 3,
    SetTssAddr = 4,
    ExtCpuid = 7,
    NrMemslots = 10,
    MpState = 14,
    SetGuestDebug = 23,
    VcpuEvents = 41,
    Xcrs = 56,
    ReadonlyMem = 81,
    ImmediateExit = 136,
    ManualDirtyLogProtect2 = 168,
    DirtyLogRing = 192,
}
