using System.Diagnostics;
using Serilog;
using Vmm.Accelerator;
using Vmm.Emulator;
using Vmm.Kvm;
using Vmm.Linux;
using Vmm.Linux.Kvm;
using Vmm.Loading;
using Vmm.Machine;

namespace Vmm.Bench;

/// <summary>
/// Cost of one port-I/O exit round trip (guest `out` → KVM_RUN returns → dispatch → KVM_RUN) through the VMM's vCPU
/// loop and device bus, against the same guest driven by the thinnest possible KVM_RUN loop in this process; and the
/// same guest on the software CPU, where an OUT is a call from the interpreter into the device bus.
/// Runs alternate between the two so drift on this noisy machine hits both alike; medians are reported.
/// </summary>
public static class ExitCostBenchmark
{
    private const uint ExitsPerRun = 100_000;
    private const int Rounds = 7;

    public static void Run()
    {
        byte[] guest = BenchGuests.PortWriteLoop(ExitsPerRun);
        using var emulator = new EmulatorAccelerator();
        KvmAccelerator? accelerator = null;
        try
        {
            accelerator = KvmAccelerator.Open();
        }
        catch (KvmUnavailableException e)
        {
            Console.WriteLine($"exit-cost: no KVM here ({e.Message}): the software CPU alone");
        }

        using (accelerator)
        {
            // Warm up every path (JIT, page faults) before measuring.
            if (accelerator is not null)
            {
                ThinLoop(accelerator.System, guest);
                ThroughVmm(accelerator, guest);
            }

            ThroughVmm(emulator, guest);

            var thin = new List<double>();
            var vmm = new List<double>();
            var software = new List<double>();
            for (int round = 0; round < Rounds; round++)
            {
                if (accelerator is not null)
                {
                    thin.Add(ThinLoop(accelerator.System, guest));
                    vmm.Add(ThroughVmm(accelerator, guest));
                }

                software.Add(ThroughVmm(emulator, guest));
            }

            Console.WriteLine($"exit-cost: port-I/O exit round trip, {ExitsPerRun} exits per run, {Rounds} rounds (median)");
            if (accelerator is not null)
            {
                double ratios = Stats.Median(thin.Zip(vmm, (t, v) => v / t));
                Console.WriteLine($"  thin KVM_RUN loop   {Stats.Median(thin) / 1000,8:F2} us/exit   runs: {Runs(thin)}");
                Console.WriteLine($"  vmm vCPU loop (KVM) {Stats.Median(vmm) / 1000,8:F2} us/exit   runs: {Runs(vmm)}");
                Console.WriteLine($"  overhead            {(ratios - 1) * 100,8:F1} %  (median of per-round vmm/thin ratios; goal < 10%)");
            }

            // The software CPU has no exit to pay for: an OUT is a call into the device bus from the interpreter.
            Console.WriteLine($"  software CPU        {Stats.Median(software) / 1000,8:F2} us/OUT    runs: {Runs(software)}");
            if (accelerator is not null)
            {
                Console.WriteLine($"  software CPU / thin {Stats.Median(thin.Zip(software, (t, e) => e / t)),8:F2} x");
            }
        }
    }

    private static string Runs(List<double> nanoseconds) => string.Join(" ", nanoseconds.Select(t => (t / 1000).ToString("F2")));

    /// <summary>Nanoseconds per exit through VirtualMachine: VcpuRunner, PortIoBus, the UART.</summary>
    private static double ThroughVmm(IAccelerator accelerator, byte[] guest)
    {
        using VirtualMachine machine = VirtualMachine.Create(accelerator, new MachineConfig(), new NullSerialSink(), new LoggerConfiguration().CreateLogger(), TextWriter.Null);
        machine.Load(new GuestImage("bench", guest, GuestImage.DefaultLoadAddress));
        var clock = Stopwatch.StartNew();
        machine.Start();
        MachineExit exit = machine.Exited.GetAwaiter().GetResult();
        clock.Stop();
        if (exit.Kind != MachineExitKind.PowerOff)
        {
            throw new InvalidOperationException($"bench guest ended badly: {exit.Detail}");
        }

        return clock.Elapsed.TotalNanoseconds / ExitsPerRun;
    }

    /// <summary>Nanoseconds per exit for a bare loop: KVM_RUN, look at the exit reason, KVM_RUN again.</summary>
    private static unsafe double ThinLoop(KvmSystem kvm, byte[] guest)
    {
        const ulong RamSize = 16 << 20;
        using KvmVm vm = kvm.CreateVm();
        nint ram = Mman.Map(0, RamSize, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        try
        {
            vm.SetUserMemoryRegion(0, 0, RamSize, ram, logDirtyPages: false);
            guest.CopyTo(new Span<byte>((byte*)ram + GuestImage.DefaultLoadAddress, guest.Length));
            using KvmVcpu vcpu = vm.CreateVcpu(0, new MachineIo(new Devices.PortIoBus(_ => { }), new Devices.MmioBus(_ => { })));
            KvmSregs sregs = vcpu.GetSregs();
            sregs.Cs.Selector = 0;
            sregs.Cs.Base = 0;
            vcpu.SetSregs(sregs);
            vcpu.SetRegs(new KvmRegs { Rip = GuestImage.DefaultLoadAddress, Rflags = 2 });

            long exits = 0;
            var clock = Stopwatch.StartNew();
            while (true)
            {
                if (vcpu.RunOnce() != 0)
                {
                    continue;
                }

                if (vcpu.Run->ExitReason == KvmExitReason.Io)
                {
                    exits++;
                    continue;
                }

                if (vcpu.Run->ExitReason == KvmExitReason.Hlt)
                {
                    break;
                }

                throw new InvalidOperationException($"thin loop: unexpected exit {vcpu.Run->ExitReason}");
            }

            clock.Stop();
            if (exits != ExitsPerRun)
            {
                throw new InvalidOperationException($"thin loop saw {exits} exits, expected {ExitsPerRun}");
            }

            return clock.Elapsed.TotalNanoseconds / exits;
        }
        finally
        {
            Mman.Unmap(ram, RamSize);
        }
    }
}
