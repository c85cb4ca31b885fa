namespace Vmm.Configuration;

/// <summary>`--accel`: which accelerator runs the guest.</summary>
public enum AcceleratorChoice
{
    /// <summary>KVM where /dev/kvm works, else the software CPU.</summary>
    Auto,

    /// <summary>KVM or nothing (status 4 where it is missing).</summary>
    Kvm,

    /// <summary>The software CPU, even where KVM exists.</summary>
    Emulator,
}
