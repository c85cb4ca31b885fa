using Vmm.Accelerator;
using Vmm.Devices;
using Vmm.Migration;
using Vmm.Ram;

namespace Vmm.Machine;

/// <summary>
/// The machine as migration sees it (<see cref="IMigratableMachine"/>): run control mapped onto run states, the
/// accelerator's dirty log (<see cref="IGuestMemoryMap"/>), vCPU plus device state as opaque sections, and the guest's free-page
/// hints (<see cref="IFreePageHinting"/>) through the free-page-hint device.
/// </summary>
public sealed class MigratableMachine(VirtualMachine machine) : IMigratableMachine, IFreePageHinting
{
    /// <summary>Whether the guest was running when the migration began: a paused guest arrives paused.</summary>
    public const string RunStateSectionName = "run-state";

    private bool wasRunning;
    private bool startRunning = true;

    public RamBlockRegistry Ram => machine.Ram;

    public VirtualMachine Machine => machine;

    private IEnumerable<IStatefulDevice> Devices =>
        machine.Bios is { } bios
            ? [machine.Serial, machine.DebugExit, machine.FreePageHints, machine.Pic, machine.Pit, bios]
            : [machine.Serial, machine.DebugExit, machine.FreePageHints, machine.Pic, machine.Pit];

    public IReadOnlyList<ulong> FirstTouchAddresses(IReadOnlyList<StateSection> saved)
    {
        var vcpuSections = new HashSet<string>(machine.Vcpus.Select(v => VcpuStateSection.SectionName(v.Vcpu.Id)));
        return [.. saved.Where(section => vcpuSections.Contains(section.Name)).SelectMany(VcpuStateSection.FirstTouchAddresses)];
    }

    public bool StopForMigration()
    {
        wasRunning = machine.TransitionFromRunning(RunState.FinishMigrate);
        if (!wasRunning)
        {
            // Migrating a guest the user had stopped: keep it parked and remember it was not running.
            machine.Pause();
        }

        return wasRunning;
    }

    public void ResumeAfterFailedMigration()
    {
        if (wasRunning)
        {
            machine.Continue();
        }

        wasRunning = false;
    }

    public void CompleteOutgoingMigration() => machine.SetStoppedState(RunState.PostMigrate);

    public void PrepareIncomingGuest() => machine.PrestartVcpus();

    public void PrepareStateTransfer(Action<string> report) => JitWarmUp.InBackground(
        () =>
        {
            JitWarmUp.Prepare(
                typeof(MigratableMachine), typeof(VcpuStateSection), typeof(Kvm.KvmVcpu), typeof(Kvm.KvmStateConversion), typeof(VcpuRunner),
                typeof(VirtualMachine), typeof(Kvm.VcpuKick), typeof(Linux.Signals), typeof(Linux.Ioctl), typeof(Uart16550), typeof(DebugExit),
                typeof(FreePageHintDevice), typeof(DeviceStateWriter), typeof(DeviceStateReader));
            machine.RehearseVcpuStateTransfer();
            RehearseDeviceStateTransfer();
        },
        report);

    public long StartIncomingGuest()
    {
        long released = System.Diagnostics.Stopwatch.GetTimestamp();
        machine.Start(paused: !startRunning);
        long running = released;
        if (startRunning)
        {
            foreach (VcpuRunner vcpu in machine.Vcpus)
            {
                // A vCPU that never leaves its park within the time is a hung machine, not a migration matter: the
                // downtime is then measured to this return.
                running = vcpu.WaitUntilRunning(released, TimeSpan.FromMilliseconds(100)) ? Math.Max(running, vcpu.RunningSince) : System.Diagnostics.Stopwatch.GetTimestamp();
            }
        }

        return running;
    }

    public void ResizeRamBlock(string name, ulong usedLength) => machine.ResizeRamBlock(name, usedLength);

    public void StartDirtyLogging() => machine.MemoryMap.StartDirtyLogging();

    public void StopDirtyLogging() => machine.MemoryMap.StopDirtyLogging();

    public void SyncDirtyLog() => machine.MemoryMap.SyncDirtyLog();

    public IDisposable RequestFreePageHints(Action<ulong, ulong> onHint) => new FreePageHintRequest(machine.FreePageHints, onHint);

    /// <summary>
    /// Loads each device's current state into a scratch device of the same kind: the load code runs once (compiled,
    /// its callees bound) without touching this machine's devices.
    /// </summary>
    private void RehearseDeviceStateTransfer()
    {
        IStatefulDevice[] scratch =
        [
            new Uart16550(new Serial.NullSerialSink()), new DebugExit(_ => { }), new FreePageHintDevice((_, _) => true),
            new Devices.Interrupts.DualPic(), new Devices.Interrupts.Pit8254(PitTimer.NowNs, _ => { }),
        ];
        foreach (IStatefulDevice device in Devices)
        {
            IStatefulDevice? twin = scratch.FirstOrDefault(s => s.SectionName == device.SectionName);
            twin?.RestoreState(device.SectionVersion, device.SaveState());
        }
    }

    public IReadOnlyList<StateSection> SaveState()
    {
        var sections = new List<StateSection>();
        foreach (VcpuRunner vcpu in machine.Vcpus)
        {
            sections.Add(VcpuStateSection.Encode(vcpu.Vcpu.Id, vcpu.Vcpu.GetState()));
        }

        foreach (IStatefulDevice device in Devices)
        {
            sections.Add(new StateSection(device.SectionName, device.SectionVersion, device.SaveState()));
        }

        bool running = machine.RunState == RunState.Running || (machine.RunState == RunState.FinishMigrate && wasRunning);
        sections.Add(new StateSection(RunStateSectionName, 1, [running ? (byte)1 : (byte)0]));
        return sections;
    }

    public void LoadState(IReadOnlyList<StateSection> sections)
    {
        var expected = new HashSet<string>(machine.Vcpus.Select(v => VcpuStateSection.SectionName(v.Vcpu.Id)).Concat(Devices.Select(d => d.SectionName)));
        foreach (StateSection section in sections)
        {
            if (section.Name == RunStateSectionName)
            {
                if (section.Version != 1 || section.Data.Length != 1)
                {
                    throw new InvalidDataException($"state section '{section.Name}' version {section.Version} with {section.Data.Length} bytes is not understood");
                }

                startRunning = section.Data[0] != 0;
                continue;
            }

            if (!expected.Remove(section.Name))
            {
                throw new InvalidDataException($"the migration stream carries state for '{PeerText.Name(section.Name)}', which this machine does not have");
            }

            if (machine.Vcpus.FirstOrDefault(v => VcpuStateSection.SectionName(v.Vcpu.Id) == section.Name) is { } vcpu)
            {
                vcpu.Vcpu.SetState(VcpuStateSection.Decode(section));
                vcpu.ForgetHalt();
            }
            else
            {
                Devices.First(d => d.SectionName == section.Name).RestoreState(section.Version, section.Data);
            }
        }

        if (expected.Count > 0)
        {
            throw new InvalidDataException($"the migration stream lacks state for {string.Join(", ", expected)}");
        }
    }
}
