using Serilog.Core;
using Vmm.Accelerator;
using Vmm.Configuration;
using Vmm.Machine;

namespace Vmm.Tests.Infrastructure;

/// <summary>
/// The accelerator the in-process test machines run on, chosen as `dotnet vmm` chooses it: VMM_ACCEL (auto, kvm,
/// emulator; `make test` runs the suite once per accelerator the host has), else auto. Child `dotnet vmm` processes
/// inherit the same variable, so a test pass runs wholly on one accelerator.
/// </summary>
public static class TestAccelerator
{
    private static readonly Lazy<SelectedAccelerator> Selected = new(() => AcceleratorSelection.Open(Choice, Logger.None));

    public static AcceleratorChoice Choice =>
        RunSettings.TryParseAccelerator(Environment.GetEnvironmentVariable("VMM_ACCEL") ?? "auto", out AcceleratorChoice choice) ? choice : AcceleratorChoice.Auto;

    /// <summary>One accelerator for the whole test process (KVM is opened once).</summary>
    public static IAccelerator Shared => Selected.Value.Accelerator;

    public static AcceleratorKind Kind => Shared.Kind;

    /// <summary>For the tests of KVM's own mechanics: skipped, with the reason printed, where this pass does not run on KVM.</summary>
    public static void RequireKvm(string what) =>
        Skip.IfNot(Kind == AcceleratorKind.Kvm, $"{what} is KVM's own mechanics; this test pass runs on the software CPU ({ReasonForEmulator()})");

    private static string ReasonForEmulator() =>
        Choice == AcceleratorChoice.Emulator ? "VMM_ACCEL=emulator" : "/dev/kvm does not work on this host";
}
