namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>Which vmm accelerator the tests run: the VMM_ACCEL of the test process, passed on to vmm.</summary>
public static class Accelerator
{
    /// <summary>vmm's own variable: the test process's value is what vmm gets.</summary>
    public const string Variable = "VMM_ACCEL";

    /// <summary>The software x86 CPU: what these tests are the witness for, hence the default.</summary>
    public const string Emulator = "emulator";

    public const string Kvm = "kvm";

    /// <summary>
    /// What the tests run with: <see cref="Emulator"/> unless VMM_ACCEL names KVM (VMM_ACCEL=kvm, to look at KVM's
    /// instruction emulator). `auto`, which `make test` sets for its first pass, still means the software CPU here:
    /// it is what these tests witness, whatever the host has.
    /// </summary>
    public static string ForTests =>
        Environment.GetEnvironmentVariable(Variable) is { } chosen && chosen.Equals(Kvm, StringComparison.OrdinalIgnoreCase) ? Kvm : Emulator;
}
