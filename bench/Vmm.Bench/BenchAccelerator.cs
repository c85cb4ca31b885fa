using Serilog.Core;
using Vmm.Configuration;
using Vmm.Machine;

namespace Vmm.Bench;

/// <summary>The accelerator the benchmarks' machines run on: VMM_ACCEL (auto, kvm, emulator) as for `dotnet vmm`, default auto.</summary>
public static class BenchAccelerator
{
    public static AcceleratorChoice Choice =>
        RunSettings.TryParseAccelerator(Environment.GetEnvironmentVariable("VMM_ACCEL") ?? "auto", out AcceleratorChoice choice) ? choice : AcceleratorChoice.Auto;

    public static SelectedAccelerator Open() => AcceleratorSelection.Open(Choice, Logger.None);
}
