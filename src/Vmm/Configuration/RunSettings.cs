using Serilog.Events;
using Vmm.Loading;
using Vmm.Machine;

namespace Vmm.Configuration;

/// <summary>Validated, typed settings for `run`. Built only through <see cref="From"/>, which reports every problem.</summary>
public sealed record RunSettings
{
    public const ulong MinimumMemory = 1ul << 20;
    public const ulong MaximumMemory = 3ul << 30;

    public required ulong MemorySize { get; init; }

    public required ulong LoadAddress { get; init; }

    public required SerialTarget Serial { get; init; }

    public required LogEventLevel LogLevel { get; init; }

    public string? LogFile { get; init; }

    public bool Trace { get; init; }

    public MachineConfig ToMachineConfig() => new() { MemorySize = MemorySize, Trace = Trace };

    public static RunSettings From(VmmOptions options)
    {
        var problems = new List<string>();

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

        if (problems.Count > 0)
        {
            throw new OptionsException(problems);
        }

        return new RunSettings
        {
            MemorySize = memory,
            LoadAddress = loadAddress,
            Serial = serial,
            LogLevel = level,
            LogFile = string.IsNullOrWhiteSpace(options.LogFile) ? null : options.LogFile,
            Trace = options.Trace,
        };
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
