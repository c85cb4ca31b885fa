using Vmm.Ram;

namespace Vmm.Accelerator;

/// <summary>
/// What runs guest code: KVM, or the software CPU where KVM is not there. One per process; it creates the
/// machine's <see cref="IAcceleratorVm"/>.
/// </summary>
public interface IAccelerator : IDisposable
{
    /// <summary>The accelerator as `--accel` and QMP's query-kvm name it.</summary>
    AcceleratorKind Kind { get; }

    /// <summary>A VM whose guest RAM is every block of <paramref name="ram"/>, now and as blocks come and go.</summary>
    IAcceleratorVm CreateVm(RamBlockRegistry ram);
}
