using System.CommandLine;
using System.Runtime.InteropServices;
using Serilog;
using Vmm.Configuration;
using Vmm.Devices;
using Vmm.Kvm;
using Vmm.Loading;
using Vmm.Logging;
using Vmm.Machine;
using Vmm.Serial;

namespace Vmm.Cli;

/// <summary>`dotnet vmm run IMAGE [options]`: boot a flat real-mode image and run it until it stops.</summary>
public static class RunCommand
{
    private static readonly Argument<string> Image = new("image") { Description = "Flat binary guest image (boot-sector convention)" };
    private static readonly Option<string> Config = new("--config") { Description = "Configuration file (default: ./vmm.json if present)", HelpName = "FILE" };
    private static readonly Option<string> Memory = new("--memory", "-m") { Description = "Guest RAM size, 1M..3G [default: 16M]", HelpName = "SIZE" };
    private static readonly Option<string> LoadAddress = new("--load-address") { Description = "Guest physical load and entry address [default: 0x7c00]", HelpName = "ADDR" };
    private static readonly Option<string> SerialOption = new("--serial") { Description = "COM1 backend: stdio | file:PATH | none [default: stdio]", HelpName = "TARGET" };
    private static readonly Option<string> LogLevel = new("--log-level") { Description = "trace | debug | info | warning | error | fatal [default: warning]", HelpName = "LEVEL" };
    private static readonly Option<string> LogFile = new("--log-file") { Description = "Also write logs to this file", HelpName = "PATH" };
    private static readonly Option<bool> Trace = new("--trace") { Description = "Single-step the guest and print every instruction to stderr" };
    private static readonly Option<string> RamBackend = new("--ram-backend") { Description = "Backend of the main RAM block: anonymous | shared | hugetlbfs [default: anonymous]", HelpName = "BACKEND" };
    private static readonly Option<string> MemPath = new("--mem-path") { Description = "Back RAM with files in this hugetlbfs directory (implies --ram-backend hugetlbfs)", HelpName = "DIR" };
    private static readonly Option<string[]> RamBlock = new("--ram-block") { Description = "Extra RAM block: name=NAME,gpa=ADDR,size=SIZE[,max=SIZE][,backend=B] (repeatable)", HelpName = "SPEC", AllowMultipleArgumentsPerToken = false };
    private static readonly Option<string> Monitor = new("--monitor") { Description = "QMP monitor socket: unix:PATH", HelpName = "unix:PATH" };

    public static Command Create()
    {
        var command = new Command("run", "Boot a flat real-mode guest image on KVM")
        {
            Image, Config, Memory, LoadAddress, SerialOption, LogLevel, LogFile, Trace, RamBackend, MemPath, RamBlock, Monitor,
        };
        command.SetAction(Execute);
        return command;
    }

    /// <summary>Only options given on the command line become configuration keys, so they override without masking vmm.json or VMM_*.</summary>
    private static Dictionary<string, string?> CommandLineValues(ParseResult parse)
    {
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        void Add(Option<string> option, string key)
        {
            if (parse.GetValue(option) is { } value)
            {
                values[key] = value;
            }
        }

        Add(Memory, nameof(VmmOptions.Memory));
        Add(LoadAddress, nameof(VmmOptions.LoadAddress));
        Add(SerialOption, nameof(VmmOptions.Serial));
        Add(LogLevel, nameof(VmmOptions.LogLevel));
        Add(LogFile, nameof(VmmOptions.LogFile));
        Add(RamBackend, nameof(VmmOptions.RamBackend));
        Add(MemPath, nameof(VmmOptions.MemPath));
        Add(Monitor, nameof(VmmOptions.Monitor));
        string[] blocks = parse.GetValue(RamBlock) ?? [];
        for (int i = 0; i < blocks.Length; i++)
        {
            values[$"{nameof(VmmOptions.RamBlocks)}:{i}"] = blocks[i];
        }
        if (parse.GetResult(Trace) is { Implicit: false })
        {
            values[nameof(VmmOptions.Trace)] = parse.GetValue(Trace) ? "true" : "false";
        }

        return values;
    }

    private static int Execute(ParseResult parse)
    {
        RunSettings settings;
        try
        {
            settings = RunSettings.From(VmmConfiguration.Build(CommandLineValues(parse), parse.GetValue(Config)));
        }
        catch (OptionsException e)
        {
            foreach (string problem in e.Problems)
            {
                CliErrors.Print(problem);
            }

            return MachineExit.StatusUsageError;
        }

        GuestImage image;
        try
        {
            image = GuestImage.Load(parse.GetValue(Image)!, settings.LoadAddress, settings.MemorySize);
        }
        catch (GuestImageException e)
        {
            CliErrors.Print(e.Message);
            return MachineExit.StatusUsageError;
        }

        using Serilog.Core.Logger log = VmmLogging.Create(settings.LogLevel, settings.LogFile);
        return Run(settings, image, log);
    }

    private static int Run(RunSettings settings, GuestImage image, ILogger log)
    {
        ISerialSink sink = settings.Serial.Kind switch
        {
            SerialTargetKind.File => new FileSerialSink(settings.Serial.Path!),
            SerialTargetKind.None => new NullSerialSink(),
            _ => new StdoutSerialSink(),
        };

        try
        {
            using KvmSystem kvm = KvmSystem.Open();
            using VirtualMachine machine = VirtualMachine.Create(kvm, settings.ToMachineConfig(), sink, log, Console.Error);
            machine.Load(image);
            if (settings.Serial.Kind == SerialTargetKind.Stdio)
            {
                StdinPump.Start(machine.Serial);
            }

            using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => Interrupt(context, machine));
            using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => Interrupt(context, machine));
            machine.Start();
            log.Information("guest {Image} running ({Memory} RAM)", image.Path, SizeParser.Format(settings.MemorySize));

            MachineExit exit = machine.Exited.GetAwaiter().GetResult();
            if (exit.Kind is MachineExitKind.GuestCrashed or MachineExitKind.HostError)
            {
                Console.Error.WriteLine($"vmm: {exit.Detail}");
            }
            else
            {
                log.Information("machine stopped: {Detail}", exit.Detail);
            }

            return exit.Status;
        }
        catch (KvmUnavailableException e)
        {
            CliErrors.Print(e.Message);
            return MachineExit.StatusHostError;
        }
        finally
        {
            (sink as IDisposable)?.Dispose();
        }
    }

    private static void Interrupt(PosixSignalContext context, VirtualMachine machine)
    {
        context.Cancel = true;
        int signal = context.Signal == PosixSignal.SIGINT ? 2 : 15;
        machine.RequestExit(new MachineExit(MachineExitKind.Quit, 128 + signal, $"stopped by signal {context.Signal}"));
    }
}
