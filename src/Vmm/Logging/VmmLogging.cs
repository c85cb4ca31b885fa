using Serilog;
using Serilog.Events;

namespace Vmm.Logging;

/// <summary>Serilog to stderr (every level) and optionally a file. stdout belongs to the guest's serial port.</summary>
public static class VmmLogging
{
    private const string Template = "[{Timestamp:HH:mm:ss.fff} {Level:u3}] {Message:lj}{NewLine}{Exception}";

    public static Serilog.Core.Logger Create(LogEventLevel level, string? logFile)
    {
        var configuration = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .WriteTo.Console(outputTemplate: Template, standardErrorFromLevel: LogEventLevel.Verbose);
        if (logFile is not null)
        {
            configuration = configuration.WriteTo.File(logFile, outputTemplate: Template);
        }

        return configuration.CreateLogger();
    }
}
