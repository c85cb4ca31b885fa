using Serilog.Events;
using Vmm.Loading;
using Vmm.Machine;
using Vmm.Ram;

namespace Vmm.Configuration;

/// <summary>Validated, typed settings for `run`. Built only through <see cref="From"/>, which reports every problem.</summary>
public sealed record RunSettings
{
    public const ulong MinimumMemory = 1ul << 20;
    public const ulong MaximumMemory = 3ul << 30;

    public AcceleratorChoice Accelerator { get; init; } = AcceleratorChoice.Auto;

    public required ulong MemorySize { get; init; }

    public required ulong LoadAddress { get; init; }

    public required SerialTarget Serial { get; init; }

    public required LogEventLevel LogLevel { get; init; }

    public string? LogFile { get; init; }

    public bool Trace { get; init; }

    public RamBackend RamBackend { get; init; } = RamBackend.Anonymous;

    public string? MemPath { get; init; }

    public IReadOnlyList<RamBlockOption> RamBlocks { get; init; } = [];

    /// <summary>The QMP monitor's Unix socket path, or null for no monitor.</summary>
    public string? MonitorPath { get; init; }

    /// <summary>--bios vmm: the built-in BIOS runs before the boot sector.</summary>
    public bool Bios { get; init; }

    public bool DiskWritable { get; init; }

    public MachineConfig ToMachineConfig() => new()
    {
        MemorySize = MemorySize,
        RamBackend = RamBackend,
        MemPath = MemPath,
        RamBlocks = RamBlocks,
        Trace = Trace,
        Bios = Bios,
        DiskWritable = DiskWritable,
    };

    public static RunSettings From(VmmOptions options)
    {
        var problems = new List<string>();

        if (!TryParseAccelerator(options.Accel, out AcceleratorChoice accelerator))
        {
            problems.Add($"accel: '{options.Accel}' is not one of auto, kvm, emulator");
        }

        if (!SizeParser.TryParseSize(options.Memory, out ulong memory))
        {
            problems.Add($"memory: '{options.Memory}' is not a size (examples: 16M, 256M, 1G)");
        }
        else if (memory < MinimumMemory || memory > MaximumMemory)
        {
            problems.Add($"memory: {options.Memory} is out of range ({SizeParser.Format(MinimumMemory)} to {SizeParser.Format(MaximumMemory)})");
        }
        else if (memory % 4096 != 0)
        {
            problems.Add($"memory: {options.Memory} is not a multiple of 4 KiB");
        }

        if (!SizeParser.TryParseNumber(options.LoadAddress, out ulong loadAddress))
        {
            problems.Add($"load-address: '{options.LoadAddress}' is not a number (examples: 0x7c00, 0x1000)");
        }
        else if (loadAddress >= GuestImage.RealModeLimit)
        {
            problems.Add($"load-address: {options.LoadAddress} is not below 1 MiB (0x100000), the real-mode limit");
        }

        if (!SerialTarget.TryParse(options.Serial, out SerialTarget serial))
        {
            problems.Add($"serial: '{options.Serial}' is not one of stdio, file:PATH, none");
        }

        if (!TryParseLogLevel(options.LogLevel, out LogEventLevel level))
        {
            problems.Add($"log-level: '{options.LogLevel}' is not one of trace, debug, info, warning, error, fatal");
        }

        if (!RamBlockOption.TryParseBackend(options.RamBackend, out RamBackend backend))
        {
            problems.Add($"ram-backend: '{options.RamBackend}' is not one of anonymous, shared, hugetlbfs");
        }

        string? memPath = string.IsNullOrWhiteSpace(options.MemPath) ? null : options.MemPath;
        if (memPath is not null)
        {
            if (!Directory.Exists(memPath))
            {
                problems.Add($"mem-path: directory '{memPath}' does not exist (it should be a hugetlbfs mount, e.g. /dev/hugepages)");
            }

            backend = RamBackend.Hugetlbfs;
        }

        if (backend == RamBackend.Hugetlbfs && memory % (2ul << 20) != 0)
        {
            problems.Add($"memory: {options.Memory} is not a multiple of the 2 MiB huge page size");
        }

        var blocks = new List<RamBlockOption>();
        foreach (string text in options.RamBlocks)
        {
            if (RamBlockOption.Parse(text, backend, problems) is { } block)
            {
                if (block.Name == VirtualMachine.MainRamBlockName || blocks.Any(b => b.Name == block.Name))
                {
                    problems.Add($"ram-block '{text}': a block named '{block.Name}' already exists");
                }
                else if (block.GuestBase < memory)
                {
                    problems.Add($"ram-block '{text}': gpa 0x{block.GuestBase:x} overlaps pc.ram [0, 0x{memory:x})");
                }
                else if (blocks.FirstOrDefault(b => block.GuestBase < b.GuestBase + b.MaxSize && b.GuestBase < block.GuestBase + block.MaxSize) is { } other)
                {
                    problems.Add($"ram-block '{text}': overlaps block '{other.Name}'");
                }
                else
                {
                    blocks.Add(block);
                }
            }
        }

        string? monitor = null;
        if (!string.IsNullOrWhiteSpace(options.Monitor))
        {
            if (options.Monitor.StartsWith("unix:", StringComparison.Ordinal) && options.Monitor.Length > "unix:".Length)
            {
                monitor = options.Monitor["unix:".Length..];
            }
            else
            {
                problems.Add($"monitor: '{options.Monitor}' is not unix:PATH");
            }
        }

        bool bios = false;
        switch (options.Bios?.Trim().ToLowerInvariant())
        {
            case "none":
                break;
            case "vmm":
                bios = true;
                break;
            default:
                problems.Add($"bios: '{options.Bios}' is not one of none, vmm");
                break;
        }

        if (problems.Count > 0)
        {
            throw new OptionsException(problems);
        }

        return new RunSettings
        {
            Accelerator = accelerator,
            MemorySize = memory,
            LoadAddress = loadAddress,
            Serial = serial,
            LogLevel = level,
            LogFile = string.IsNullOrWhiteSpace(options.LogFile) ? null : options.LogFile,
            Trace = options.Trace,
            RamBackend = backend,
            MemPath = memPath,
            RamBlocks = blocks,
            MonitorPath = monitor,
            Bios = bios,
            DiskWritable = options.DiskWritable,
        };
    }

    public static bool TryParseAccelerator(string? text, out AcceleratorChoice choice)
    {
        choice = AcceleratorChoice.Auto;
        switch (text?.Trim().ToLowerInvariant())
        {
            case "auto":
                return true;
            case "kvm":
                choice = AcceleratorChoice.Kvm;
                return true;
            case "emulator":
                choice = AcceleratorChoice.Emulator;
                return true;
            default:
                return false;
        }
    }

    public static bool TryParseLogLevel(string text, out LogEventLevel level)
    {
        (string Name, LogEventLevel Level)[] names =
        [
            ("trace", LogEventLevel.Verbose), ("verbose", LogEventLevel.Verbose), ("debug", LogEventLevel.Debug),
            ("info", LogEventLevel.Information), ("information", LogEventLevel.Information), ("warning", LogEventLevel.Warning),
            ("warn", LogEventLevel.Warning), ("error", LogEventLevel.Error), ("fatal", LogEventLevel.Fatal),
        ];
        foreach ((string name, LogEventLevel value) in names)
        {
            if (string.Equals(name, text?.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                level = value;
                return true;
            }
        }

        level = LogEventLevel.Warning;
        return false;
    }
}
