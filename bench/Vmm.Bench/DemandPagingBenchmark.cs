using System.Diagnostics;
using Serilog;
using Vmm.Devices;
using Vmm.Accelerator;
using Vmm.Loading;
using Vmm.Machine;
using Vmm.Ram;

namespace Vmm.Bench;

/// <summary>
/// Demand paging: a guest touches N MiB for the first time while every one of those first touches is resolved by a
/// userfaultfd handler in this process (ZEROPAGE; on hugetlbfs, which has none, COPY of a zeroed 2 MiB buffer), against
/// the same first touches served by the kernel with no userfaultfd at all. Per backend, in host pages per second.
/// </summary>
/// <remarks>
/// <para>
/// The guest is dirty-256m in a 258 MiB machine: it probes the top of RAM (touching the first page of every MiB), prints
/// "A", then increments the first byte of every 4 KiB page of [1 MiB, 257 MiB) and prints "B" at the end of the pass.
/// Before the vCPU starts, all of pc.ram is registered MISSING (the image page, written by the loader, is the only page
/// present), so every other page the guest touches is a userfaultfd fault. A handler thread reads faults with
/// <see cref="Userfaultfd.ReadFaults"/> — spinning on non-blocking reads all the time ("busy"), sleeping in poll(2) at
/// once ("poll", busyPoll = 0), or spinning 200 µs after each batch before it sleeps ("hybrid") — places the page, and
/// the placement wakes the vCPU.
/// </para>
/// <para>
/// Measured: T1 = from Start() until the first "B" (every first touch: probe and pass), and T2 = the second pass, over
/// pages that are all present, with the handler already stopped (what the emulated guest code costs by itself).
/// Reported: pages/s = pages touched / T1 (end to end, the figure compared with the reference), and the cost per first
/// touch beyond the guest's own work = (T1 − T2) / pages. DESIGN §6 reference figures for a minimal C handler on these
/// machines: ~6,900 pages/s sleeping in poll, ~27,000 pages/s busy-polling (~145 µs / ~37 µs a fault). Wake-up costs
/// depend on whether the other CPU is idle (an idle vCPU of this nested host is halted and slow to wake), so the
/// figures move with the load of the machine: run it on a quiet one.
/// </para>
/// </remarks>
public static class DemandPagingBenchmark
{
    private const int Rounds = 5;
    private const ulong MiB = 1ul << 20;
    private const ulong MemorySize = 258 * MiB;
    private const ulong TouchedTop = 257 * MiB; // dirty-256m dirties [1 MiB, 257 MiB); the probe stops at 258 MiB
    private const double ReferencePollPagesPerSecond = 6_900;
    private const double ReferenceBusyPagesPerSecond = 27_000;

    /// <summary>The hybrid handler spins this long after each batch before it sleeps in poll(2).</summary>
    private static readonly TimeSpan HybridSpin = TimeSpan.FromMicroseconds(200);

    private enum Mode
    {
        NoUserfaultfd,
        Busy,
        Poll,
        Hybrid,
    }

    public static void Run()
    {
        string guest = FindGuest("dirty-256m");
        using SelectedAccelerator selected = BenchAccelerator.Open();
        IAccelerator kvm = selected.Accelerator;
        Console.WriteLine($"demand-paging: dirty-256m in {MemorySize / MiB} MiB, first touches of [0, {TouchedTop / MiB} MiB) plus the probe; {Rounds} rounds, medians");
        Console.WriteLine($"  {"backend",-10} {"page",5} {"pages",6}  {"first touch by",-30} {"T1 ms",8} {"T2 ms",7} {"pages/s",9} {"MiB/s",7} {"us/page",8} {"faults",7}  vs kernel / C handler (pages/s)");

        foreach (RamBackend backend in new[] { RamBackend.Anonymous, RamBackend.Shared, RamBackend.Hugetlbfs })
        {
            if (backend == RamBackend.Hugetlbfs && HugePages.AvailablePages < MemorySize / HugePages.PageSize)
            {
                Console.WriteLine($"  {"hugetlbfs",-10} skipped: {HugePages.AvailablePages} free huge pages, {MemorySize / HugePages.PageSize} needed (make setup reserves them)");
                continue;
            }

            // Warm-up: JIT of every path, and the host's first use of the memory.
            foreach (Mode mode in Enum.GetValues<Mode>())
            {
                Measure(kvm, guest, backend, mode);
            }

            var results = new Dictionary<Mode, List<Measurement>>();
            for (int round = 0; round < Rounds; round++)
            {
                // Alternate the variants within a round so drift on this noisy machine hits all of them alike.
                foreach (Mode mode in Enum.GetValues<Mode>())
                {
                    if (!results.TryGetValue(mode, out List<Measurement>? list))
                    {
                        results[mode] = list = [];
                    }

                    list.Add(Measure(kvm, guest, backend, mode));
                }
            }

            double kernelRate = Rate(results[Mode.NoUserfaultfd]);
            foreach (Mode mode in Enum.GetValues<Mode>())
            {
                Print(backend, mode, results[mode], kernelRate);
            }

            (Mode bestMode, double bestRate) = Enum.GetValues<Mode>().Where(m => m != Mode.NoUserfaultfd).Select(m => (m, Rate(results[m]))).MaxBy(x => x.Item2);
            string goal = results[bestMode][0].PageSize == 4096
                ? $"{bestRate / ReferenceBusyPagesPerSecond * 100:F0} % of the better C figure (27,000 busy-polling); goal >= 90 %: {(bestRate >= 0.9 * ReferenceBusyPagesPerSecond ? "met" : "NOT met")}"
                : "the C figures are 4 KiB faults: not comparable with 2 MiB ones";
            Console.WriteLine($"  {string.Empty,-10} best userfaultfd handler: {Label(bestMode)}, {bestRate:F0} pages/s = {goal}");
        }
    }

    private static double Rate(List<Measurement> runs) => Stats.Median(runs.Select(r => r.PagesTouched / r.FirstPass.TotalSeconds));

    private static string Label(Mode mode) => mode switch
    {
        Mode.NoUserfaultfd => "kernel (no userfaultfd)",
        Mode.Busy => "uffd handler, busy-poll",
        Mode.Poll => "uffd handler, poll(2)",
        _ => $"uffd, spin {HybridSpin.TotalMicroseconds:F0} us then poll",
    };

    private static void Print(RamBackend backend, Mode mode, List<Measurement> runs, double kernelRate)
    {
        Measurement first = runs[0];
        double t1 = Stats.Median(runs.Select(r => r.FirstPass.TotalMilliseconds));
        double t2 = Stats.Median(runs.Select(r => r.SecondPass.TotalMilliseconds));
        double rate = Rate(runs);
        double perPage = Stats.Median(runs.Select(r => (r.FirstPass - r.SecondPass).TotalMicroseconds / r.PagesTouched));
        double faults = Stats.Median(runs.Select(r => (double)r.Faults));
        double mibPerSecond = rate * first.PageSize / MiB;
        string label = Label(mode);

        // Against the kernel's own first touch, and — for 4 KiB faults, which is what they measured — the C handler.
        string versus = mode == Mode.NoUserfaultfd
            ? string.Empty
            : $"{rate / kernelRate * 100,4:F0} % of kernel" + (first.PageSize != 4096
                ? string.Empty
                : $"; {rate / ReferenceBusyPagesPerSecond * 100,4:F0} % of C busy 27,000, {rate / ReferencePollPagesPerSecond * 100,4:F0} % of C poll 6,900");
        Console.WriteLine(
            $"  {backend.ToString().ToLowerInvariant(),-10} {first.PageSize / 1024,4}K {first.PagesTouched,6}  {label,-30} {t1,8:F1} {t2,7:F1} {rate,9:F0} {mibPerSecond,7:F0} {perPage,8:F1} {(mode == Mode.NoUserfaultfd ? "-" : faults.ToString("F0")),7}  {versus}");
        Console.WriteLine($"  {string.Empty,-10} {string.Empty,5} {string.Empty,6}  {"  runs, pages/s:",-30} {string.Join(" ", runs.Select(r => (r.PagesTouched / r.FirstPass.TotalSeconds).ToString("F0")))}");
    }

    private static Measurement Measure(IAccelerator kvm, string guestPath, RamBackend backend, Mode mode)
    {
        FaultHandler? handler = null;

        // After the first pass nothing faults any more: stop the handler there, so that the second pass (T2) is the
        // guest's own cost and not also a spinning handler's competition for the CPU.
        var clock = new PassClock(() => handler?.Stop());
        using VirtualMachine machine = VirtualMachine.Create(
            kvm, new MachineConfig { MemorySize = MemorySize, RamBackend = backend }, clock, new LoggerConfiguration().CreateLogger(), TextWriter.Null);
        machine.Load(GuestImage.Load(guestPath, GuestImage.DefaultLoadAddress, MemorySize));
        RamBlock block = machine.Ram.FindByName(VirtualMachine.MainRamBlockName)!;

        // The probe touches the first page of every MiB up to the top, the pass every page of [1 MiB, 257 MiB), the
        // loader one page below 1 MiB (already present), the stack shares it.
        ulong pagesTouched = block.PageSize == HugePages.PageSize
            ? MemorySize / block.PageSize - 1
            : ((TouchedTop - MiB) / block.PageSize) + (MemorySize / MiB - TouchedTop / MiB);

        handler = mode switch
        {
            Mode.NoUserfaultfd => null,
            Mode.Busy => new FaultHandler(block, Timeout.InfiniteTimeSpan),
            Mode.Poll => new FaultHandler(block, TimeSpan.Zero),
            _ => new FaultHandler(block, HybridSpin),
        };
        try
        {
            long start = Stopwatch.GetTimestamp();
            machine.Start();
            if (!clock.TwoPasses.Wait(TimeSpan.FromSeconds(300)))
            {
                throw new TimeoutException($"demand-paging ({backend}, {mode}): the guest did not finish two passes in 300 s");
            }

            if (machine.Exited.IsCompleted)
            {
                throw new InvalidOperationException($"demand-paging ({backend}, {mode}): the guest stopped: {machine.Exited.Result.Detail}");
            }

            return new Measurement(
                block.PageSize,
                pagesTouched,
                Stopwatch.GetElapsedTime(start, clock.PassEnds[0]),
                Stopwatch.GetElapsedTime(clock.PassEnds[0], clock.PassEnds[1]),
                handler?.Faults ?? 0);
        }
        finally
        {
            // Closing the userfaultfd first drops the registration and wakes any vCPU still waiting in a fault.
            handler?.Dispose();
        }
    }

    private static string FindGuest(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Vmm.sln")))
            {
                string path = Path.Combine(dir.FullName, "guests", "bin", $"{name}.bin");
                return File.Exists(path) ? path : throw new FileNotFoundException($"guest image {path} is missing: run 'make guests'");
            }
        }

        throw new InvalidOperationException("cannot find the repository root (Vmm.sln) above " + AppContext.BaseDirectory);
    }

    private readonly record struct Measurement(ulong PageSize, ulong PagesTouched, TimeSpan FirstPass, TimeSpan SecondPass, long Faults);

    /// <summary>The serial sink: timestamps the first two "B"s (ends of passes) on the vCPU thread.</summary>
    private sealed class PassClock(Action onFirstPass) : ISerialSink
    {
        public long[] PassEnds { get; } = new long[2];

        public ManualResetEventSlim TwoPasses { get; } = new();

        private int count;

        public void Write(ReadOnlySpan<byte> bytes)
        {
            foreach (byte b in bytes)
            {
                if (b == (byte)'B' && count < PassEnds.Length)
                {
                    PassEnds[count++] = Stopwatch.GetTimestamp();
                    if (count == 1)
                    {
                        onFirstPass();
                    }

                    if (count == PassEnds.Length)
                    {
                        TwoPasses.Set();
                    }
                }
            }
        }
    }

    /// <summary>
    /// Registers the whole block MISSING and resolves every fault on its own thread: ZEROPAGE, or COPY of a zeroed
    /// huge page on hugetlbfs (which has no ZEROPAGE). The placement wakes the faulting vCPU.
    /// </summary>
    private sealed unsafe class FaultHandler : IDisposable
    {
        private static readonly TimeSpan ReadTimeout = TimeSpan.FromMilliseconds(5);

        private readonly Userfaultfd uffd;
        private readonly RamBlock block;
        private readonly TimeSpan busyPoll;
        private readonly Thread thread;
        private readonly nint zeroSource;
        private volatile bool stop;
        private long faults;

        public FaultHandler(RamBlock block, TimeSpan busyPoll)
        {
            this.block = block;
            this.busyPoll = busyPoll;
            uffd = Userfaultfd.Open(Userfaultfd.RequiredFeatures(block.Backend, UffdRegisterModes.Missing));
            uffd.Register(block.HostAddress, block.UsedLength, UffdRegisterModes.Missing);
            if (block.Backend == RamBackend.Hugetlbfs)
            {
                zeroSource = (nint)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)block.PageSize, 4096);
                new Span<byte>((void*)zeroSource, (int)block.PageSize).Clear();
            }

            thread = new Thread(Loop) { IsBackground = true, Name = "uffd-handler" };
            thread.Start();
        }

        public long Faults => Interlocked.Read(ref faults);

        /// <summary>Asks the handler thread to end; it notices within one read timeout (a few ms).</summary>
        public void Stop() => stop = true;

        private void Loop()
        {
            var batch = new UserfaultfdEvent[64];
            nint pageMask = ~(nint)(block.PageSize - 1);
            ulong pageSize = block.PageSize;
            bool hugetlb = block.Backend == RamBackend.Hugetlbfs;
            while (!stop)
            {
                // Busy: spin for the whole read timeout. Poll: sleep in poll(2) at once. Hybrid: spin a little first.
                int count = uffd.ReadFaults(batch, ReadTimeout, busyPoll == Timeout.InfiniteTimeSpan ? ReadTimeout : busyPoll);
                for (int i = 0; i < count; i++)
                {
                    if (batch[i].Kind != UserfaultfdEventKind.Pagefault)
                    {
                        continue;
                    }

                    nint page = batch[i].Address & pageMask;
                    PlacementResult result;
                    do
                    {
                        result = hugetlb ? uffd.Copy(page, zeroSource, pageSize) : uffd.ZeroPage(page, pageSize);
                    }
                    while (result.Status == PlacementStatus.Retry);

                    if (result.Status is PlacementStatus.AlreadyPresent or PlacementStatus.NotRegistered or PlacementStatus.Partial)
                    {
                        // A duplicate fault, or a range gone: whoever waits there must not wait for ever.
                        uffd.Wake(page, pageSize);
                    }

                    Interlocked.Increment(ref faults);
                }
            }
        }

        public void Dispose()
        {
            stop = true;
            thread.Join();
            uffd.Dispose();
            if (zeroSource != 0)
            {
                System.Runtime.InteropServices.NativeMemory.AlignedFree((void*)zeroSource);
            }
        }
    }
}
