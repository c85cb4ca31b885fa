namespace Vmm.Accelerator;

/// <summary>The accelerators vmm has (`--accel kvm|emulator`).</summary>
public enum AcceleratorKind
{
    /// <summary>Linux KVM through /dev/kvm: guest code runs on the host CPU.</summary>
    Kvm,

    /// <summary>vmm's own software x86 CPU, an interpreter: runs wherever .NET runs.</summary>
    Emulator,
}
