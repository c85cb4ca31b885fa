using System.Diagnostics;
using System.Runtime.InteropServices;
using Serilog;
using Vmm.Accelerator;
using Vmm.Emulator;
using Alu = Vmm.Guests.Alu;
using MemTest = Vmm.Guests.MemTest;
using Vmm.Kvm;
using Vmm.Linux.Kvm;
using Vmm.Loading;
using Vmm.Machine;

namespace Vmm.Bench;

/// <summary>
/// The software CPU against QEMU 7.2's TCG (a JIT) on the same guest images, in one invocation: a register-only ALU
/// loop with a flag chain (guest instructions a second), the dirty-16m loop with dirty logging off and on (passes a
/// second) and memtest's string instructions (MiB a second). Progress is counted on the serial line for both, after
/// a warm-up, so QEMU's BIOS and either engine's compilation are not counted. Runs alternate A B B A; medians are
/// reported. Where KVM works its figure is printed beside them.
/// </summary>
public static class CpuBenchmark
{
    private const int Rounds = 4;
    private const string Software = "software CPU";
    private const string Qemu = "QEMU TCG";
    private const string DirtyLogOff = "dirty-16m, log off";
    private const string DirtyLogOn = "dirty-16m, log on";
    private static readonly TimeSpan WarmUp = TimeSpan.FromMilliseconds(500);

    /// <summary>One guest image and how its progress becomes a figure.</summary>
    private sealed record Workload(string Name, string Image, ulong MemoryMiB, bool DirtyLogging, string Unit, TimeSpan Limit, Func<SerialTimeline, double> Measure);

    /// <summary>An engine that runs a workload and returns what the guest printed, with arrival times.</summary>
    private sealed record Engine(string Name, Func<Workload, SerialTimeline> Run);

    public static void Run()
    {
        // How often the log is harvested while dirty logging is on: as often as a precopy iteration over a small guest.
        TimeSpan harvestEvery = TimeSpan.FromMilliseconds(10);
        const ulong MemTestMiB = 128;
        Workload[] workloads =
        [
            new("alu", "alu", 16, false, "M instr/s", TimeSpan.FromSeconds(3),
                t => t.MarkRate((byte)'B', WarmUp) * Alu.InstructionsPerMark / 1e6),
            new(DirtyLogOff, "dirty-16m", 64, false, "passes/s", TimeSpan.FromSeconds(2.5),
                t => t.MarkRate((byte)'B', WarmUp)),
            new(DirtyLogOn, "dirty-16m", 64, true, "passes/s", TimeSpan.FromSeconds(2.5),
                t => t.MarkRate((byte)'B', WarmUp)),
            new("memtest", "memtest", MemTestMiB, false, "MiB/s", TimeSpan.FromSeconds(60),
                t => MemTestRate(t, MemTestMiB)),
        ];

        string? qemuProblem = QemuTcg.Unavailable();
        using var emulator = new EmulatorAccelerator();
        KvmAccelerator? kvm = null;
        try
        {
            kvm = KvmAccelerator.Open();
        }
        catch (KvmUnavailableException e)
        {
            Console.WriteLine($"cpu: no KVM here ({e.Message}): no KVM column");
        }

        using (kvm)
        {
            var engines = new List<Engine> { new(Software, w => InProcess(emulator, w, harvestEvery)) };
            if (qemuProblem is null)
            {
                engines.Add(new(Qemu, InQemu));
            }
            else
            {
                Console.WriteLine($"cpu: no QEMU here ({qemuProblem}): no ratios");
            }

            if (kvm is not null)
            {
                engines.Add(new("KVM", w => InProcess(kvm, w, harvestEvery)));
            }

            Console.WriteLine($"cpu: the same guest images on {string.Join(", ", engines.Select(e => e.Name))}; {Rounds} rounds, engines alternating A B B A (medians)");

            // Rounds outside, workloads inside: the two dirty-16m rows of a round run back to back, so the cost of
            // logging is a ratio of neighbours rather than of runs a minute apart on this noisy machine.
            var figures = new Dictionary<(string Workload, string Engine), List<double>>();
            for (int round = 0; round < Rounds; round++)
            {
                foreach (Workload workload in workloads)
                {
                    foreach (Engine engine in round % 2 == 0 ? engines : Enumerable.Reverse(engines))
                    {
                        if (engine.Name == Qemu && workload.DirtyLogging)
                        {
                            continue; // QEMU logs dirty pages only while it migrates
                        }

                        double figure = workload.Measure(engine.Run(workload));
                        CollectionsMarshal.GetValueRefOrAddDefault(figures, (workload.Name, engine.Name), out _) ??= [];
                        figures[(workload.Name, engine.Name)].Add(figure);
                    }
                }
            }

            Console.WriteLine($"  {"workload",-20} {"unit",-10} {string.Join(" ", engines.Select(e => $"{e.Name,13}"))}   software CPU / QEMU TCG");
            foreach (Workload workload in workloads)
            {
                List<double> Of(string engine) => figures.GetValueOrDefault((workload.Name, engine)) ?? [];

                // With logging on, the software CPU is held against QEMU without it: the harder bar.
                List<double> qemu = workload.DirtyLogging ? figures.GetValueOrDefault((DirtyLogOff, Qemu)) ?? [] : Of(Qemu);
                string ratio = qemuProblem is null
                    ? $"{Stats.Median(Of(Software).Zip(qemu, (s, q) => s / q)),8:F3}x{(workload.DirtyLogging ? " (QEMU not logging)" : "")}"
                    : "";
                Console.WriteLine($"  {workload.Name,-20} {workload.Unit,-10} {string.Join(" ", engines.Select(e => Figure(Stats.Median(Of(e.Name)))))}   {ratio}");
                Console.WriteLine($"  {"",-20} {"runs",-10} {string.Join(" ", engines.Select(e => string.Join("/", Of(e.Name).Select(f => f.ToString("F0"))).PadLeft(13)))}");
            }

            List<double> logOff = figures[(DirtyLogOff, Software)];
            List<double> logOn = figures[(DirtyLogOn, Software)];
            double cost = 1 - Stats.Median(logOn.Zip(logOff, (on, off) => on / off));
            double alu = Stats.Median(figures[("alu", Software)]);
            Console.WriteLine($"  software CPU: dirty logging costs {cost * 100:F1} % (median of per-round ratios; goal <= 10 %; harvested every {harvestEvery.TotalMilliseconds:F0} ms); ALU {alu:F0} M instr/s (goal >= 150)");
            if (qemuProblem is null)
            {
                double ratio = Stats.Median(logOn.Zip(figures[(DirtyLogOff, Qemu)], (s, q) => s / q));
                Console.WriteLine($"  dirty-16m, software CPU logging / QEMU TCG not logging: {ratio:F2}x (goal >= 1.0x)");
            }
        }
    }

    /// <summary>n/a: the engine printed fewer than two marks after the warm-up (KVM on a host that emulates real mode).</summary>
    private static string Figure(double value) => double.IsNaN(value) ? $"{"n/a",13}" : $"{value,13:F1}";

    /// <summary>MiB a second of memtest's string instructions: two passes, each a fill and a verify of every byte above 1 MiB.</summary>
    private static double MemTestRate(SerialTimeline output, ulong memoryMiB)
    {
        // Timed from the end of the banner line (the loops start right after it) to the first byte of the verdict.
        long? banner = output.TimesOf((byte)'\n').FirstOrDefault() is long t and not 0 ? t : null;
        long? verdict = output.TimeOf(MemTest.PassOutput);
        if (banner is null || verdict is null)
        {
            throw new InvalidOperationException($"memtest did not pass: {output.Text}");
        }

        double bytesMiB = 4.0 * (memoryMiB - 1);
        return bytesMiB / Stopwatch.GetElapsedTime(banner.Value, verdict.Value).TotalSeconds;
    }

    private static SerialTimeline InProcess(IAccelerator accelerator, Workload workload, TimeSpan harvestEvery)
    {
        var output = new SerialTimeline();
        var config = new MachineConfig { MemorySize = workload.MemoryMiB << 20 };
        using VirtualMachine machine = VirtualMachine.Create(accelerator, config, output, new LoggerConfiguration().CreateLogger(), TextWriter.Null);
        machine.Load(GuestImage.Load(InProcessPostcopy.GuestImagePath(workload.Image), GuestImage.DefaultLoadAddress, config.MemorySize));
        if (workload.DirtyLogging)
        {
            machine.MemoryMap.StartDirtyLogging();
        }

        machine.Start();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < workload.Limit && !machine.Exited.IsCompleted)
        {
            Thread.Sleep(harvestEvery);
            if (workload.DirtyLogging)
            {
                machine.MemoryMap.SyncDirtyLog();
            }
        }

        return output;
    }

    private static SerialTimeline InQemu(Workload workload)
    {
        string disk = QemuTcg.BootDisk(InProcessPostcopy.GuestImagePath(workload.Image));
        try
        {
            // SeaBIOS takes about a second to reach the boot sector: the limit counts from QEMU's start.
            using var qemu = new QemuInstance(disk, workload.MemoryMiB);
            qemu.RunFor(workload.Limit + TimeSpan.FromSeconds(1.5));
            if (qemu.Output.Text.Length == 0)
            {
                throw new InvalidOperationException($"QEMU ran {workload.Image} but it printed nothing: {qemu.Errors}");
            }

            return qemu.Output;
        }
        finally
        {
            File.Delete(disk);
        }
    }
}
