namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>Which vmm accelerator a run asks for (passed to vmm as VMM_ACCEL).</summary>
public static class Accelerator
{
    /// <summary>The software x86 CPU: what these tests are the witness for.</summary>
    public const string Emulator = "emulator";

    public const string Kvm = "kvm";

    /// <summary>
    /// Set this (e.g. CPU_SEMANTICS_ACCEL=kvm) to run every test against another accelerator. Deliberately not a
    /// VMM_ name: vmm reads every VMM_* variable as configuration.
    /// </summary>
    public const string OverrideVariable = "CPU_SEMANTICS_ACCEL";

    /// <summary>What the tests run with: <see cref="Emulator"/> unless <see cref="OverrideVariable"/> says otherwise.</summary>
    public static string ForTests =>
        Environment.GetEnvironmentVariable(OverrideVariable) is { Length: > 0 } chosen ? chosen : Emulator;
}
