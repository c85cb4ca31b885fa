using Serilog;
using Vmm.Accelerator;
using Vmm.Emulator;
using Vmm.Kvm;
using Vmm.Loading;
using Vmm.Machine;
using IrqRate = Vmm.Guests.IrqRate;

namespace Vmm.Bench;

/// <summary>
/// Timer interrupts delivered per second, from the PIT through the PIC into a guest's handler and back (EOI, IRET,
/// HLT): the irq-rate guest on the bare machine (it programs the PIC and a ~100 kHz PIT itself) on the software CPU,
/// on KVM where it works, and on QEMU 7.2's TCG from the same image. The guest prints a mark every 1000 interrupts;
/// the figure is marks a second after a warm-up. Rounds alternate the engines A B B A; medians are reported.
/// </summary>
public static class InterruptRateBenchmark
{
    private const int Rounds = 3;
    private const ulong MemoryMiB = 16;
    private const string Image = "irq-rate";
    private static readonly TimeSpan RunTime = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan WarmUp = TimeSpan.FromMilliseconds(500);

    private sealed record Engine(string Name, Func<SerialTimeline> Run);

    public static void Run()
    {
        string image = InProcessPostcopy.GuestImagePath(Image);
        using var emulator = new EmulatorAccelerator();
        KvmAccelerator? kvm = null;
        try
        {
            kvm = KvmAccelerator.Open();
        }
        catch (KvmUnavailableException e)
        {
            Console.WriteLine($"interrupts: no KVM here ({e.Message}): no KVM figure");
        }

        using (kvm)
        {
            var engines = new List<Engine> { new("software CPU", () => InProcess(emulator, image)) };
            if (kvm is not null)
            {
                engines.Add(new("KVM", () => InProcess(kvm, image)));
            }

            string? qemuProblem = QemuTcg.Unavailable();
            if (qemuProblem is null)
            {
                engines.Add(new("QEMU TCG", () => InQemu(image)));
            }
            else
            {
                Console.WriteLine($"interrupts: no QEMU here ({qemuProblem}): no QEMU figure");
            }

            Console.WriteLine(
                $"interrupts: {Image} (PIT channel 0 at {IrqRate.ProgrammedHz / 1000:F1} kHz, a mark every {IrqRate.InterruptsPerMark} IRQ 0s) " +
                $"on {string.Join(", ", engines.Select(e => e.Name))}; {Rounds} rounds of {RunTime.TotalSeconds:F0} s, engines alternating A B B A (medians)");
            var figures = engines.ToDictionary(e => e.Name, _ => new List<double>());
            for (int round = 0; round < Rounds; round++)
            {
                foreach (Engine engine in round % 2 == 0 ? engines : Enumerable.Reverse(engines))
                {
                    figures[engine.Name].Add(engine.Run().MarkRate((byte)'I', WarmUp) * IrqRate.InterruptsPerMark);
                }
            }

            Console.WriteLine($"  {"engine",-14} {"interrupts/s",13} {"of programmed",14}   runs");
            foreach (Engine engine in engines)
            {
                List<double> runs = figures[engine.Name];
                double median = Stats.Median(runs);
                string figure = double.IsNaN(median) ? $"{"n/a",13}" : $"{median,13:F0}";
                string share = double.IsNaN(median) ? $"{"",14}" : $"{median / IrqRate.ProgrammedHz * 100,13:F0}%";
                Console.WriteLine($"  {engine.Name,-14} {figure} {share}   {string.Join("/", runs.Select(r => r.ToString("F0")))}");
            }
        }
    }

    private static SerialTimeline InProcess(IAccelerator accelerator, string image)
    {
        var output = new SerialTimeline();

        // The bare machine: the guest owns the PIC and the PIT, no BIOS tick handler runs in between.
        var config = new MachineConfig { MemorySize = MemoryMiB << 20, Bios = false };
        using VirtualMachine machine = VirtualMachine.Create(accelerator, config, output, new LoggerConfiguration().CreateLogger(), TextWriter.Null);
        machine.Load(GuestImage.Load(image, GuestImage.DefaultLoadAddress, config.MemorySize));
        machine.Start();
        machine.Exited.Wait(RunTime);
        if (machine.Exited.IsCompleted)
        {
            throw new InvalidOperationException($"{Image} stopped: {machine.Exited.Result}; it printed: {output.Text}");
        }

        return output;
    }

    private static SerialTimeline InQemu(string image)
    {
        string disk = QemuTcg.BootDisk(image);
        try
        {
            // SeaBIOS takes about a second to reach the boot sector: the run time counts from QEMU's start.
            using var qemu = new QemuInstance(disk, MemoryMiB);
            qemu.RunFor(RunTime + TimeSpan.FromSeconds(1.5));
            if (qemu.Output.Text.Length == 0)
            {
                throw new InvalidOperationException($"QEMU ran {Image} but it printed nothing: {qemu.Errors}");
            }

            return qemu.Output;
        }
        finally
        {
            File.Delete(disk);
        }
    }
}
