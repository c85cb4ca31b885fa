using Serilog;
using Vmm.Devices;
using Vmm.Diagnostics;
using Vmm.Kvm;
using Vmm.Linux.Kvm;
using Vmm.Loading;
using Vmm.Ram;

namespace Vmm.Machine;

/// <summary>
/// A whole guest: RAM blocks and their memslots, the device buses, COM1 and isa-debug-exit, and the vCPUs.
/// Any thread may pause, resume or end it; <see cref="Exited"/> completes with the first reason it stopped.
/// </summary>
public sealed class VirtualMachine : IDisposable
{
    public const string MainRamBlockName = "pc.ram";

    private readonly KvmVm vm;
    private readonly Memslots memslots;
    private readonly List<VcpuRunner> vcpus = [];
    private readonly TaskCompletionSource<MachineExit> exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ILogger log;
    private readonly object runGate = new();
    private RunState runState = RunState.Prelaunch;
    private GuestImage? image;

    private VirtualMachine(KvmSystem kvm, MachineConfig config, ISerialSink serialSink, ILogger log, TextWriter diagnostics)
    {
        this.log = log;
        Config = config;
        vm = kvm.CreateVm();
        Ram = new RamBlockRegistry();
        Memory = new GuestMemory(Ram);
        memslots = new Memslots(vm, Ram);
        Ram.Add(RamBlock.CreateAnonymous(MainRamBlockName, 0, config.MemorySize));

        var unclaimedLog = log.ForContext("SourceContext", "bus");
        Ports = new PortIoBus(port => unclaimedLog.Debug("unclaimed I/O port {Port:x4}: reads 0xff, writes ignored", port));
        Mmio = new MmioBus(address => unclaimedLog.Debug("unclaimed MMIO address {Address:x}: reads 0xff, writes ignored", address));
        Serial = new Uart16550(serialSink);
        DebugExit = new DebugExit(status => RequestExit(MachineExit.DebugExit(status)));
        Ports.Register(Uart16550.Com1Base, Uart16550.PortCount, Serial, "serial (COM1)");
        Ports.Register(DebugExit.DefaultPort, 1, DebugExit, "isa-debug-exit");

        var disassembler = new Disassembler(Memory);
        var crashReporter = new CrashReporter(disassembler);
        byte[] cpuid = kvm.GetSupportedCpuid();
        KvmVcpu vcpu = vm.CreateVcpu(0);
        vcpu.SetCpuid(cpuid);
        var runner = new VcpuRunner(vcpu, Ports, Mmio, crashReporter, RequestExit, log);
        if (config.Trace)
        {
            runner.Tracer = new InstructionTracer(disassembler, diagnostics);
        }

        vcpus.Add(runner);
    }

    public MachineConfig Config { get; }

    public RamBlockRegistry Ram { get; }

    public GuestMemory Memory { get; }

    public PortIoBus Ports { get; }

    public MmioBus Mmio { get; }

    public Uart16550 Serial { get; }

    public DebugExit DebugExit { get; }

    public IReadOnlyList<VcpuRunner> Vcpus => vcpus;

    /// <summary>Completes once, with the first reason the machine stopped.</summary>
    public Task<MachineExit> Exited => exited.Task;

    public bool IsPaused => vcpus.All(v => v.IsPaused || v.HasExited);

    public RunState RunState
    {
        get
        {
            lock (runGate)
            {
                return runState;
            }
        }
    }

    /// <summary>STOP, RESUME, SHUTDOWN and RESET, for the monitor's event stream.</summary>
    public event Action<MachineEvent>? Event;

    public static VirtualMachine Create(KvmSystem kvm, MachineConfig config, ISerialSink serialSink, ILogger log, TextWriter diagnostics)
    {
        VcpuKick.InitializeProcess();
        return new VirtualMachine(kvm, config, serialSink, log, diagnostics);
    }

    /// <summary>
    /// Copies the image into RAM and puts vCPU 0 at its entry in real mode: CS:IP = 0000:addr (or addr&gt;&gt;4:addr&amp;0xf
    /// above 64 KiB), DL = 0x80 (boot drive), SP = 0x7C00, all other segments 0, interrupts off.
    /// </summary>
    public void Load(GuestImage image)
    {
        this.image = image;
        Memory.Write(image.LoadAddress, image.Bytes);
        KvmVcpu vcpu = vcpus[0].Vcpu;
        KvmSregs sregs = vcpu.GetSregs();
        ushort codeSegment = image.LoadAddress <= 0xFFFF ? (ushort)0 : (ushort)(image.LoadAddress >> 4);
        sregs.Cs.Selector = codeSegment;
        sregs.Cs.Base = (ulong)codeSegment << 4;
        ResetDataSegment(ref sregs.Ds);
        ResetDataSegment(ref sregs.Es);
        ResetDataSegment(ref sregs.Fs);
        ResetDataSegment(ref sregs.Gs);
        ResetDataSegment(ref sregs.Ss);
        vcpu.SetSregs(sregs);
        vcpu.SetRegs(new KvmRegs
        {
            Rip = image.LoadAddress - sregs.Cs.Base,
            Rflags = 0x2, // bit 1 is reserved-as-one; IF clear
            Rdx = 0x80,
            Rsp = GuestImage.DefaultLoadAddress,
        });
        log.Debug("loaded {Bytes} bytes from {Path} at {Address:x}", image.Bytes.Length, image.Path, image.LoadAddress);
    }

    private static void ResetDataSegment(ref KvmSegment segment)
    {
        segment.Selector = 0;
        segment.Base = 0;
    }

    /// <summary>Starts the vCPU threads; with <paramref name="paused"/> they park before running any guest code.</summary>
    public void Start(bool paused = false)
    {
        lock (runGate)
        {
            if (runState != RunState.Prelaunch)
            {
                throw new InvalidOperationException("the machine is already started");
            }

            runState = paused ? RunState.Paused : RunState.Running;
            foreach (VcpuRunner vcpu in vcpus)
            {
                vcpu.Start(paused);
            }
        }
    }

    /// <summary>
    /// Parks every vCPU outside KVM_RUN. This is the mechanism (for memslot changes, migration, inspection); it
    /// changes no user-visible state and raises no event. See <see cref="Stop"/> for the user's "stop".
    /// </summary>
    public void Pause()
    {
        foreach (VcpuRunner vcpu in vcpus)
        {
            vcpu.Pause();
        }
    }

    /// <summary>Undoes <see cref="Pause"/>: lets the vCPUs run again if the machine's state is running.</summary>
    public void Resume()
    {
        if (RunState != RunState.Running)
        {
            return;
        }

        foreach (VcpuRunner vcpu in vcpus)
        {
            vcpu.Resume();
        }
    }

    /// <summary>Runs <paramref name="action"/> with the vCPUs parked, then lets them continue as they were.</summary>
    public T WithVcpusPaused<T>(Func<T> action)
    {
        Pause();
        try
        {
            return action();
        }
        finally
        {
            Resume();
        }
    }

    /// <summary>The user's stop (QMP "stop"): parks the vCPUs, state Paused, STOP event. No-op unless running.</summary>
    public void Stop() => TransitionFromRunning(RunState.Paused);

    /// <summary>Leaves <see cref="RunState.Running"/> for <paramref name="target"/> (paused, finish-migrate, ...), parking the vCPUs.</summary>
    public bool TransitionFromRunning(RunState target)
    {
        lock (runGate)
        {
            if (runState != RunState.Running)
            {
                return false;
            }

            runState = target;
        }

        Pause();
        Event?.Invoke(new MachineEvent(MachineEventKind.Stop));
        return true;
    }

    /// <summary>The user's cont (QMP "cont"): from paused (or any stopped, non-shutdown state) back to running, RESUME event.</summary>
    public void Continue()
    {
        lock (runGate)
        {
            if (runState is RunState.Running or RunState.Shutdown or RunState.Prelaunch)
            {
                return;
            }

            runState = RunState.Running;
        }

        Resume();
        Event?.Invoke(new MachineEvent(MachineEventKind.Resume));
    }

    /// <summary>Sets a stopped state without touching the vCPUs (e.g. paused → postmigrate).</summary>
    public void SetStoppedState(RunState state)
    {
        if (state == RunState.Running)
        {
            throw new ArgumentException("use Continue() to run", nameof(state));
        }

        lock (runGate)
        {
            runState = state;
        }
    }

    /// <summary>
    /// QMP system_reset: reloads the image, puts vCPU 0 back at its entry state and resets COM1; RAM above the image
    /// keeps its contents, as on a real warm reset. The run state is unchanged.
    /// </summary>
    public void Reset()
    {
        GuestImage loaded = image ?? throw new InvalidOperationException("no image loaded");
        WithVcpusPaused(() =>
        {
            Load(loaded);

            // COM1 back to its power-on registers: the state of a freshly built UART.
            var powerOn = new Uart16550(DiscardingSink.Instance);
            Serial.RestoreState(powerOn.SectionVersion, powerOn.SaveState());
            return true;
        });
        Event?.Invoke(new MachineEvent(MachineEventKind.Reset, "host-qmp-system-reset"));
    }

    /// <summary>Ends the machine with <paramref name="exit"/> unless it already ended. Callable from any thread.</summary>
    public void RequestExit(MachineExit exit)
    {
        if (exited.TrySetResult(exit))
        {
            lock (runGate)
            {
                runState = RunState.Shutdown;
            }

            foreach (VcpuRunner vcpu in vcpus)
            {
                vcpu.RequestStop();
            }

            Event?.Invoke(new MachineEvent(MachineEventKind.Shutdown, ShutdownReason(exit), GuestInitiated: exit.Kind is MachineExitKind.PowerOff or MachineExitKind.DebugExit or MachineExitKind.GuestCrashed));
        }
    }

    private sealed class DiscardingSink : ISerialSink
    {
        public static readonly DiscardingSink Instance = new();

        public void Write(ReadOnlySpan<byte> bytes)
        {
        }
    }

    private static string ShutdownReason(MachineExit exit) => exit.Kind switch
    {
        MachineExitKind.PowerOff => "guest-shutdown",
        MachineExitKind.DebugExit => "guest-shutdown",
        MachineExitKind.GuestCrashed => "guest-panic",
        MachineExitKind.HostError => "host-error",
        _ => "host-qmp-quit",
    };

    public void Dispose()
    {
        RequestExit(MachineExit.Quit("machine disposed"));
        foreach (VcpuRunner vcpu in vcpus)
        {
            vcpu.Dispose();
            vcpu.Vcpu.Dispose();
        }

        // KVM lets go of guest memory when the VM closes; only then is it safe to unmap the blocks.
        memslots.Dispose();
        vm.Dispose();
        Ram.Dispose();
    }
}
