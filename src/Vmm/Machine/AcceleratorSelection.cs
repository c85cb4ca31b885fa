using Serilog;
using Vmm.Accelerator;
using Vmm.Configuration;
using Vmm.Emulator;
using Vmm.Kvm;

namespace Vmm.Machine;

/// <summary>The accelerator a run uses, and whether KVM is there at all (QMP query-kvm's "present").</summary>
public sealed record SelectedAccelerator(IAccelerator Accelerator, bool KvmPresent) : IDisposable
{
    public void Dispose() => Accelerator.Dispose();
}

/// <summary>
/// `--accel`: KVM where it works (auto, kvm), else the software CPU (auto, emulator). Auto says which it took and
/// why in one info-level line; `kvm` where KVM is missing fails with <see cref="KvmUnavailableException"/> (status 4).
/// </summary>
public static class AcceleratorSelection
{
    public static SelectedAccelerator Open(AcceleratorChoice choice, ILogger log)
    {
        switch (choice)
        {
            case AcceleratorChoice.Kvm:
                return new SelectedAccelerator(KvmAccelerator.Open(), KvmPresent: true);

            case AcceleratorChoice.Emulator:
                return new SelectedAccelerator(new EmulatorAccelerator(), KvmPresent: ProbeKvm() is null);

            default:
                KvmAccelerator kvm;
                try
                {
                    kvm = KvmAccelerator.Open();
                }
                catch (KvmUnavailableException e)
                {
                    log.Information("accelerator: emulator (software CPU; KVM unavailable: {Reason})", e.Message);
                    return new SelectedAccelerator(new EmulatorAccelerator(), KvmPresent: false);
                }

                log.Information("accelerator: kvm ({Path} works)", KvmSystem.DevicePath);
                return new SelectedAccelerator(kvm, KvmPresent: true);
        }
    }

    /// <summary>Null when KVM would work here, else why not.</summary>
    public static string? ProbeKvm()
    {
        try
        {
            KvmAccelerator.Open().Dispose();
            return null;
        }
        catch (KvmUnavailableException e)
        {
            return e.Message;
        }
    }
}
