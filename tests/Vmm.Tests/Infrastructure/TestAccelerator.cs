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

    /// <summary>The choice as `--accel` and VMM_ACCEL spell it.</summary>
    public static string ChoiceName => Choice.ToString().ToLowerInvariant();

    /// <summary>One accelerator for the whole test process (KVM is opened once).</summary>
    public static IAccelerator Shared => Selected.Value.Accelerator;

    public static AcceleratorKind Kind => Shared.Kind;
}
