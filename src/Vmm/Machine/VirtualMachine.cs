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
    private bool started;

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

    public void Start(bool paused = false)
    {
        lock (runGate)
        {
            if (started)
            {
                throw new InvalidOperationException("the machine is already started");
            }

            started = true;
            foreach (VcpuRunner vcpu in vcpus)
            {
                vcpu.Start(paused);
            }
        }
    }

    public void Pause()
    {
        foreach (VcpuRunner vcpu in vcpus)
        {
            vcpu.Pause();
        }
    }

    public void Resume()
    {
        foreach (VcpuRunner vcpu in vcpus)
        {
            vcpu.Resume();
        }
    }

    /// <summary>Ends the machine with <paramref name="exit"/> unless it already ended. Callable from any thread.</summary>
    public void RequestExit(MachineExit exit)
    {
        if (exited.TrySetResult(exit))
        {
            foreach (VcpuRunner vcpu in vcpus)
            {
                vcpu.RequestStop();
            }
        }
    }

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
