using System.Diagnostics;
using Serilog;
using Vmm.Kvm;
using Vmm.Linux;
using Vmm.Linux.Kvm;
using Vmm.Loading;
using Vmm.Machine;

namespace Vmm.Bench;

/// <summary>
/// Cost of one port-I/O exit round trip (guest `out` → KVM_RUN returns → dispatch → KVM_RUN) through the VMM's vCPU
/// loop and device bus, against the same guest driven by the thinnest possible KVM_RUN loop in this process.
/// Runs alternate between the two so drift on this noisy machine hits both alike; medians are reported.
/// </summary>
public static class ExitCostBenchmark
{
    private const uint ExitsPerRun = 100_000;
    private const int Rounds = 7;

    public static void Run()
    {
        byte[] guest = BenchGuests.PortWriteLoop(ExitsPerRun);
        using KvmAccelerator accelerator = KvmAccelerator.Open();
        KvmSystem kvm = accelerator.System;

        // Warm up both paths (JIT, page faults) before measuring.
        ThinLoop(kvm, guest);
        ThroughVmm(accelerator, guest);

        var thin = new List<double>();
        var vmm = new List<double>();
        for (int round = 0; round < Rounds; round++)
        {
            thin.Add(ThinLoop(kvm, guest));
            vmm.Add(ThroughVmm(accelerator, guest));
        }

        double thinMedian = Stats.Median(thin);
        double vmmMedian = Stats.Median(vmm);
        double ratios = Stats.Median(thin.Zip(vmm, (t, v) => v / t));
        Console.WriteLine($"exit-cost: port-I/O exit round trip, {ExitsPerRun} exits per run, {Rounds} rounds (median)");
        Console.WriteLine($"  thin KVM_RUN loop   {thinMedian / 1000,8:F2} us/exit   runs: {string.Join(" ", thin.Select(t => (t / 1000).ToString("F2")))}");
        Console.WriteLine($"  vmm vCPU loop       {vmmMedian / 1000,8:F2} us/exit   runs: {string.Join(" ", vmm.Select(t => (t / 1000).ToString("F2")))}");
        Console.WriteLine($"  overhead            {(ratios - 1) * 100,8:F1} %  (median of per-round vmm/thin ratios; goal < 10%)");
    }

    /// <summary>Nanoseconds per exit through VirtualMachine: VcpuRunner, PortIoBus, the UART.</summary>
    private static double ThroughVmm(KvmAccelerator kvm, byte[] guest)
    {
        using VirtualMachine machine = VirtualMachine.Create(kvm, new MachineConfig(), new NullSerialSink(), new LoggerConfiguration().CreateLogger(), TextWriter.Null);
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
