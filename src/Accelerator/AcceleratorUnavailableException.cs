namespace Vmm.Accelerator;

/// <summary>The host cannot run guests on the accelerator asked for (no /dev/kvm, no permission, a missing capability).</summary>
public class AcceleratorUnavailableException(string message) : Exception(message);
