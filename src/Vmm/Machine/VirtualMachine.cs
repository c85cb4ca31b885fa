using Serilog;
using Vmm.Accelerator;
using Vmm.Accelerator.State;
using Vmm.Bios;
using Vmm.Devices;
using Vmm.Devices.Interrupts;
using Vmm.Diagnostics;
using Vmm.Loading;
using Vmm.Migration;
using Vmm.Ram;

namespace Vmm.Machine;

/// <summary>
/// A whole guest: RAM blocks and the accelerator's map of them, the device buses, COM1, isa-debug-exit, the
/// free-page-hint device, the PICs and the PIT (and with --bios vmm the BIOS), and the vCPUs (on KVM or on the software CPU: <see cref="IAccelerator"/>).
/// Any thread may pause, resume or end it; <see cref="Exited"/> completes with the first reason it stopped.
/// </summary>
public sealed class VirtualMachine : IDisposable
{
    public const string MainRamBlockName = "pc.ram";

    /// <summary>COM1's interrupt line on the PIC, as on every PC.</summary>
    public const int Com1Irq = 4;

    private readonly IAcceleratorVm vm;
    private readonly List<VcpuRunner> vcpus = [];
    private readonly TaskCompletionSource<MachineExit> exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ILogger log;
    private readonly object runGate = new();
    private RunState runState = RunState.Prelaunch;
    private int exitRequested;
    private GuestImage? image;
    private readonly PitTimer pitTimer;

    private VirtualMachine(IAccelerator accelerator, MachineConfig config, ISerialSink serialSink, ILogger log, TextWriter diagnostics)
    {
        this.log = log;
        Config = config;
        Accelerator = accelerator.Kind;
        Ram = new RamBlockRegistry();
        Memory = new GuestMemory(Ram);
        vm = accelerator.CreateVm(Ram);
        try
        {
            // Shared and hugetlbfs blocks get an alias mapping: postcopy fills MINOR-registered pages through it.
            Ram.Add(RamBlock.Create(new RamBlockSpec(
                MainRamBlockName, 0, config.MemorySize, Backend: config.RamBackend, MemPath: config.MemPath, Alias: config.RamBackend != RamBackend.Anonymous)));
            foreach (Configuration.RamBlockOption extra in config.RamBlocks)
            {
                // --mem-path is where hugetlbfs files go; blocks of other backends have no use for it.
                string? memPath = extra.Backend == RamBackend.Hugetlbfs ? config.MemPath : null;
                Ram.Add(RamBlock.Create(new RamBlockSpec(
                    extra.Name, extra.GuestBase, extra.Size, extra.MaxSize, extra.Backend, memPath, Alias: extra.Backend != RamBackend.Anonymous)));
            }
        }
        catch
        {
            vm.Dispose();
            Ram.Dispose();
            throw;
        }

        var unclaimedLog = log.ForContext("SourceContext", "bus");
        Ports = new PortIoBus(port => unclaimedLog.Debug("unclaimed I/O port {Port:x4}: reads 0xff, writes ignored", port));
        Mmio = new MmioBus(address => unclaimedLog.Debug("unclaimed MMIO address {Address:x}: reads 0xff, writes ignored", address));
        Serial = new Uart16550(serialSink);
        DebugExit = new DebugExit(status => RequestExit(MachineExit.DebugExit(status)));
        Ports.Register(Uart16550.Com1Base, Uart16550.PortCount, Serial, "serial (COM1)");
        Ports.Register(DebugExit.DefaultPort, 1, DebugExit, "isa-debug-exit");
        var hintLog = log.ForContext("SourceContext", "free-page-hint");
        FreePageHints = new FreePageHintDevice(IsInsideOneRamBlock, message => hintLog.Debug("free-page-hint: {Message}", message));
        Ports.Register(FreePageHintDevice.DefaultPort, FreePageHintDevice.PortCount, FreePageHints, "free-page-hint");

        // The PC's interrupt hardware is always there, BIOS or not; it does nothing until a guest programs it.
        Pic = new DualPic();
        Pit = new Pit8254(PitTimer.NowNs, Pic.PulseIrq);
        Ports.Register(DualPic.MasterBase, 2, Pic.MasterPorts, "pic (master)");
        Ports.Register(DualPic.SlaveBase, 2, Pic.SlavePorts, "pic (slave)");
        Ports.Register(DualPic.ElcrBase, 2, Pic.ElcrPorts, "pic edge/level control (ELCR)");
        Ports.Register(Pit8254.BasePort, Pit8254.PortCount, Pit, "pit");
        Ports.Register(SystemControlPort.Port, 1, new SystemControlPort(Pit), "system control port B");
        Serial.InterruptLine = level => Pic.SetIrq(Com1Irq, level);
        pitTimer = new PitTimer(Pit);
        if (config.Bios)
        {
            var biosLog = log.ForContext("SourceContext", "bios");
            BiosMemory = new BiosMemory(Memory, vm.Memory);
            Bios = new BiosServices(BiosMemory, Serial, serialSink, Ram, message => biosLog.Information("bios: {Message}", message));
            Ports.Register(BiosLayout.ServicePortBase, BiosLayout.ServicePortCount, Bios, "bios services");
            ProtectBiosRom(biosLog);
        }

        var disassembler = new Disassembler(Memory);
        var crashReporter = new CrashReporter(disassembler);
        IVcpu vcpu = vm.CreateVcpu(0, new MachineIo(Ports, Mmio));
        vcpu.SingleStep = config.Trace;
        var runner = new VcpuRunner(vcpu, crashReporter, RequestExit, log);
        if (config.Trace)
        {
            runner.Tracer = new InstructionTracer(disassembler, diagnostics);
        }

        runner.ConnectInterrupts(new PicInterruptSource(Pic));
        Pic.OutputRaised += runner.InterruptRaised;
        vcpus.Add(runner);
        Migration = new MigrationController(new MigratableMachine(this), log);
    }

    /// <summary>Outgoing and incoming migration of this machine (the monitor's migrate commands).</summary>
    public MigrationController Migration { get; }

    public MachineConfig Config { get; }

    /// <summary>What runs this guest's vCPUs.</summary>
    public AcceleratorKind Accelerator { get; }

    public RamBlockRegistry Ram { get; }

    public GuestMemory Memory { get; }

    public PortIoBus Ports { get; }

    public MmioBus Mmio { get; }

    public Uart16550 Serial { get; }

    public DebugExit DebugExit { get; }

    /// <summary>Ports 0x5A0–0x5A7: the guest reports free RAM when an outgoing migration asks (MigratableMachine).</summary>
    public FreePageHintDevice FreePageHints { get; }

    /// <summary>The 8259A pair (ports 0x20–0x21, 0xA0–0xA1, ELCR 0x4D0–0x4D1): the vCPU's interrupt line on either accelerator.</summary>
    public DualPic Pic { get; }

    /// <summary>The 8254 (ports 0x40–0x43, 0x61); channel 0 drives IRQ 0.</summary>
    public Pit8254 Pit { get; }

    /// <summary>The built-in BIOS's services (ports 0xB00–0xBFF), or null with --bios none.</summary>
    public BiosServices? Bios { get; }

    private BiosMemory? BiosMemory { get; }

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

    public static VirtualMachine Create(IAccelerator accelerator, MachineConfig config, ISerialSink serialSink, ILogger log, TextWriter diagnostics) =>
        new(accelerator, config, serialSink, log, diagnostics);

    /// <summary>
    /// Copies the image into RAM and puts vCPU 0 at its entry in real mode (<see cref="EntryState"/>): CS:IP =
    /// 0000:addr (or addr&gt;&gt;4:addr&amp;0xf above 64 KiB), DL = 0x80 (boot drive), SP = 0x7C00, all other segments
    /// 0, interrupts off, and every other register as after a CPU reset. With the BIOS, POST runs first (ROM, vector
    /// table, data area, PIC and PIT) and the entry has interrupts on; the image is also disk 0x80.
    /// </summary>
    public void Load(GuestImage image)
    {
        this.image = image;
        Memory.Write(image.LoadAddress, image.Bytes);
        VcpuState entry = EntryState.For(image.LoadAddress);
        if (Bios is not null && BiosMemory is not null)
        {
            Bios.Disk = new BootDisk(image.Bytes, Config.DiskWritable ? image.Path : null);
            BiosPost.Run(BiosMemory, Pic, Pit);

            // A BIOS hands over with interrupts on: the timer ticks from the first instruction of the boot sector.
            entry = entry with { Registers = entry.Registers with { General = entry.Registers.General with { Rflags = entry.Registers.General.Rflags | GeneralRegisters.InterruptFlag } } };
        }

        vcpus[0].Vcpu.SetState(entry);
        vcpus[0].ForgetHalt();
        log.Debug("loaded {Bytes} bytes from {Path} at {Address:x}", image.Bytes.Length, image.Path, image.LoadAddress);
    }

    /// <summary>Starts the vCPU threads; with <paramref name="paused"/> they park before running any guest code.</summary>
    public void Start(bool paused = false)
    {
        lock (runGate)
        {
            if (runState is not (RunState.Prelaunch or RunState.InMigrate))
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
    /// Saves and loads vCPU state once on a scratch vCPU of a scratch VM, never this machine's: the code of a
    /// migration switchover (generic interop included) gets compiled and the kernel paths warmed while the guest
    /// runs. Best effort: a failure is logged and changes nothing.
    /// </summary>
    public void RehearseVcpuStateTransfer()
    {
        try
        {
            vm.RehearseStateTransfer();
            VcpuStateSection.Decode(VcpuStateSection.Encode(0, EntryState.For(GuestImage.DefaultLoadAddress)));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            log.Debug("rehearsing the vCPU state transfer on a scratch vCPU failed: {Message}", e.Message);
        }
    }

    /// <summary>Starts every vCPU thread parked, without starting the machine (<see cref="VcpuRunner.Prestart"/>).</summary>
    public void PrestartVcpus()
    {
        lock (runGate)
        {
            foreach (VcpuRunner vcpu in vcpus)
            {
                vcpu.Prestart();
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
            // In migrate, the incoming migration starts the guest (its vCPU threads wait parked for that).
            if (runState is RunState.Running or RunState.Shutdown or RunState.Prelaunch or RunState.InMigrate)
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
    /// QMP system_reset: resets COM1, the PICs and the PIT, reloads the image (running the BIOS's POST again with
    /// --bios vmm) and puts vCPU 0 back at its entry state; RAM above the image
    /// keeps its contents, as on a real warm reset. The run state is unchanged.
    /// </summary>
    public void Reset()
    {
        GuestImage loaded = image ?? throw new InvalidOperationException("no image loaded");
        WithVcpusPaused(() =>
        {
            // COM1 back to its power-on registers: the state of a freshly built UART.
            var powerOn = new Uart16550(DiscardingSink.Instance);
            Serial.RestoreState(powerOn.SectionVersion, powerOn.SaveState());
            Pic.Reset();
            var pitPowerOn = new Pit8254(PitTimer.NowNs, _ => { });
            Pit.RestoreState(pitPowerOn.SectionVersion, pitPowerOn.SaveState());
            Load(loaded);
            return true;
        });
        Event?.Invoke(new MachineEvent(MachineEventKind.Reset, "host-qmp-system-reset"));
    }

    /// <summary>Guest RAM as the accelerator maps it: dirty logging and layout, for migration and for tests of the memslot-change rules.</summary>
    public IGuestMemoryMap MemoryMap => vm.Memory;

    /// <summary>
    /// Changes a resizable block's used length (monitor ram-resize). The vCPUs are parked while the block and its
    /// memslots change, and the old slots' dirty logs are harvested first, so the guest sees the old layout or the new
    /// one and never loses a dirty page. Past the used length the guest finds no RAM: reads all-ones, writes ignored.
    /// </summary>
    public void ResizeRamBlock(string name, ulong newUsedLength)
    {
        RamBlock block = FindBlock(name);
        if (!block.IsResizable)
        {
            throw new ArgumentException($"RAM block '{name}' is not resizable (its size is fixed at {block.MaxLength} bytes)");
        }

        if (newUsedLength == 0 || newUsedLength > block.MaxLength || newUsedLength % block.PageSize != 0)
        {
            throw new ArgumentException($"RAM block '{name}': size {newUsedLength} must be a non-zero multiple of {block.PageSize} up to {block.MaxLength}");
        }

        WithVcpusPaused(() =>
        {
            Ram.Resize(block, newUsedLength);
            vm.Memory.Refresh(block);
            return true;
        });
        log.Information("RAM block {Name} resized to {Size} bytes", name, newUsedLength);
    }

    /// <summary>Monitor ram-discard: the range reads as zeros afterwards and its memory goes back to the host.</summary>
    public void DiscardRam(string name, ulong offset, ulong length)
    {
        RamBlock block = FindBlock(name);
        CheckRange(block, offset, length);
        WithVcpusPaused(() =>
        {
            // Parked: the software CPU's page tables and decoded code are its vCPU thread's alone.
            block.Discard(offset, length);
            vm.Memory.ContentChanged(block, offset, length);
            return true;
        });

        // The host changed guest memory behind the dirty log: a migration in flight must send these pages again.
        block.DirtyBitmap.SetRange(offset / DirtyBitmap.PageSize, length / DirtyBitmap.PageSize);
    }

    /// <summary>
    /// Monitor ram-remap: replaces the range's mapping with fresh memory, as a VMM does after a hardware memory
    /// error. The vCPUs are parked so no access races the replacement.
    /// </summary>
    public void RemapRam(string name, ulong offset, ulong length)
    {
        RamBlock block = FindBlock(name);
        CheckRange(block, offset, length);
        WithVcpusPaused(() =>
        {
            Ram.Remap(block, offset, length);
            vm.Memory.ContentChanged(block, offset, length);
            block.DirtyBitmap.SetRange(offset / DirtyBitmap.PageSize, length / DirtyBitmap.PageSize);
            return true;
        });
    }

    /// <summary>Takes a range of a block out of guest RAM (an MMIO hole), atomically for the guest.</summary>
    public void AddMmioHole(string name, ulong offset, ulong length)
    {
        RamBlock block = FindBlock(name);
        WithVcpusPaused(() =>
        {
            vm.Memory.AddHole(block, offset, length);
            return true;
        });
    }

    public void RemoveMmioHole(string name, ulong offset)
    {
        RamBlock block = FindBlock(name);
        WithVcpusPaused(() =>
        {
            vm.Memory.RemoveHole(block, offset);
            return true;
        });
    }

    /// <summary>
    /// Makes F0000–FFFFF (what of it is RAM) a ROM to the guest on either accelerator: its stores are dropped, while
    /// POST, a reset and an incoming migration still write it through the host mapping. The block's dirty bitmap still
    /// covers it, so migration sends it like any other page.
    /// </summary>
    private void ProtectBiosRom(ILogger biosLog)
    {
        if (Ram.FindByGuestAddress(BiosLayout.RomBase) is not { } block || BiosMemory is null)
        {
            return;
        }

        ulong offset = BiosLayout.RomBase - block.GuestBase;
        ulong length = Math.Min((ulong)BiosLayout.RomSize, block.UsedLength - offset);
        if (vm.Memory.AddReadOnly(block, offset, length))
        {
            Mmio.Register(BiosLayout.RomBase, length, new BiosRomMmio(BiosMemory), "bios rom (writes dropped)");
        }
        else
        {
            biosLog.Warning("this KVM cannot map memory read-only (no KVM_CAP_READONLY_MEM): the BIOS ROM is writable by the guest");
        }
    }

    /// <summary>Whether [address, +length) lies inside the used length of one RAM block (length non-zero).</summary>
    private bool IsInsideOneRamBlock(ulong address, ulong length) =>
        Ram.FindByGuestAddress(address) is { } block && length <= block.GuestEnd - address;

    private RamBlock FindBlock(string name) =>
        Ram.FindByName(name) ?? throw new ArgumentException($"no RAM block named '{name}' (see query-ram-blocks)");

    private static void CheckRange(RamBlock block, ulong offset, ulong length)
    {
        if (length == 0 || offset % block.PageSize != 0 || length % block.PageSize != 0 || offset > block.UsedLength || length > block.UsedLength - offset)
        {
            throw new ArgumentException(
                $"RAM block '{block.Name}': range [0x{offset:x}, +0x{length:x}) must be non-empty, aligned to its page size 0x{block.PageSize:x} and inside its used length 0x{block.UsedLength:x}");
        }
    }

    /// <summary>Ends the machine with <paramref name="exit"/> unless it already ended. Callable from any thread.</summary>
    public void RequestExit(MachineExit exit)
    {
        if (Interlocked.Exchange(ref exitRequested, 1) != 0)
        {
            return;
        }

        lock (runGate)
        {
            runState = RunState.Shutdown;
        }

        foreach (VcpuRunner vcpu in vcpus)
        {
            vcpu.RequestStop();
        }

        // SHUTDOWN goes out before Exited completes: whoever waits on Exited to end the process finds it sent.
        Event?.Invoke(new MachineEvent(MachineEventKind.Shutdown, ShutdownReason(exit), GuestInitiated: exit.Kind is MachineExitKind.PowerOff or MachineExitKind.DebugExit or MachineExitKind.GuestCrashed));
        exited.TrySetResult(exit);
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
        MachineExitKind.Signal => "host-signal",
        _ => "host-qmp-quit",
    };

    public void Dispose()
    {
        RequestExit(MachineExit.Quit("machine disposed"));
        Migration.Shutdown();
        pitTimer.Dispose();
        foreach (VcpuRunner vcpu in vcpus)
        {
            vcpu.Dispose();
            vcpu.Vcpu.Dispose();
        }

        // KVM lets go of guest memory when the VM closes; only then is it safe to unmap the blocks.
        vm.Dispose();
        Ram.Dispose();
    }
}
