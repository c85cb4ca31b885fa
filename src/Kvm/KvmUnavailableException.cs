using Vmm.Accelerator;

namespace Vmm.Kvm;

/// <summary>The host cannot run guests on KVM: no /dev/kvm, no permission, wrong API or a missing capability.</summary>
public sealed class KvmUnavailableException(string message) : AcceleratorUnavailableException(message);
