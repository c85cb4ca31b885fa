using System.CommandLine;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Serilog;
using Vmm.Accelerator;
using Vmm.Configuration;
using Vmm.Devices;
using Vmm.Loading;
using Vmm.Logging;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Stream;
using Vmm.Serial;

namespace Vmm.Cli;

/// <summary>`dotnet vmm run IMAGE [options]`: boot a flat real-mode image and run it until it stops.</summary>
public static class RunCommand
{
    private static readonly Argument<string?> Image = new("image") { Description = "Flat binary guest image (boot-sector convention); omitted with --incoming", Arity = ArgumentArity.ZeroOrOne };
    private static readonly Option<string> Incoming = new("--incoming") { Description = "Wait for a migrating guest instead of booting one: tcp:HOST:PORT | unix:PATH", HelpName = "URI" };
    private static readonly Option<string> Accel = new("--accel") { Description = "Accelerator: auto (KVM where it works, else the software CPU) | kvm | emulator [default: auto]", HelpName = "ACCEL" };
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
    private static readonly Option<string> BiosOption = new("--bios") { Description = "Firmware: vmm (the built-in BIOS: int 10h/13h/15h/16h/1Ah) | none (the bare machine: no BIOS, empty vector table) [default: vmm]", HelpName = "BIOS" };
    private static readonly Option<bool> DiskWritable = new("--disk-writable") { Description = "With --bios vmm: int 13h writes go to the image file (default: to a private copy)" };
    private static readonly Option<string> Monitor = new("--monitor") { Description = "QMP monitor socket: unix:PATH", HelpName = "unix:PATH" };

    public static Command Create()
    {
        var command = new Command("run", "Boot a flat real-mode guest image (on KVM, or on the software CPU)")
        {
            Image, Incoming, Accel, Config, Memory, LoadAddress, SerialOption, LogLevel, LogFile, Trace, RamBackend, MemPath, RamBlock, Monitor, BiosOption, DiskWritable,
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

        Add(Accel, nameof(VmmOptions.Accel));
        Add(Memory, nameof(VmmOptions.Memory));
        Add(LoadAddress, nameof(VmmOptions.LoadAddress));
        Add(SerialOption, nameof(VmmOptions.Serial));
        Add(LogLevel, nameof(VmmOptions.LogLevel));
        Add(LogFile, nameof(VmmOptions.LogFile));
        Add(RamBackend, nameof(VmmOptions.RamBackend));
        Add(MemPath, nameof(VmmOptions.MemPath));
        Add(Monitor, nameof(VmmOptions.Monitor));
        Add(BiosOption, nameof(VmmOptions.Bios));
        string[] blocks = parse.GetValue(RamBlock) ?? [];
        for (int i = 0; i < blocks.Length; i++)
        {
            values[$"{nameof(VmmOptions.RamBlocks)}:{i}"] = blocks[i];
        }
        if (parse.GetResult(DiskWritable) is { Implicit: false })
        {
            values[nameof(VmmOptions.DiskWritable)] = parse.GetValue(DiskWritable) ? "true" : "false";
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

        string? imagePath = parse.GetValue(Image);
        string? incomingText = parse.GetValue(Incoming);
        MigrationUri? incoming = null;
        if (incomingText is not null && !MigrationUri.TryParse(incomingText, out incoming, out string? uriError))
        {
            CliErrors.Print($"incoming: {uriError}");
            return MachineExit.StatusUsageError;
        }

        if ((imagePath is null) == (incoming is null))
        {
            CliErrors.Print(incoming is null
                ? "a guest image is required (or --incoming URI to receive a migrating guest)"
                : "--incoming receives the guest's memory from the source: give no image");
            return MachineExit.StatusUsageError;
        }

        GuestImage? image = null;
        try
        {
            if (imagePath is not null)
            {
                image = GuestImage.Load(imagePath, settings.LoadAddress, settings.MemorySize);
            }
        }
        catch (GuestImageException e)
        {
            CliErrors.Print(e.Message);
            return MachineExit.StatusUsageError;
        }

        using Serilog.Core.Logger log = VmmLogging.Create(settings.LogLevel, settings.LogFile);
        return Run(settings, image, incoming, log);
    }

    private static int Run(RunSettings settings, GuestImage? image, MigrationUri? incoming, ILogger log)
    {
        ISerialSink sink = settings.Serial.Kind switch
        {
            SerialTargetKind.File => new FileSerialSink(settings.Serial.Path!),
            SerialTargetKind.None => new NullSerialSink(),
            _ => new StdoutSerialSink(),
        };

        try
        {
            using SelectedAccelerator accelerator = AcceleratorSelection.Open(settings.Accelerator, log);
            using VirtualMachine machine = VirtualMachine.Create(accelerator.Accelerator, settings.ToMachineConfig() with { KvmPresent = accelerator.KvmPresent }, sink, log, Console.Error);
            // Signals first: from here on a SIGINT/SIGTERM ends the machine cleanly (socket files removed).
            using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => Interrupt(context, machine));
            using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => Interrupt(context, machine));

            Socket? listener = null;
            if (image is not null)
            {
                machine.Load(image);
            }
            else
            {
                // Listening before the monitor opens: a monitor that answers means the destination is ready.
                machine.SetStoppedState(RunState.InMigrate);
                listener = IncomingMigration.Listen(incoming!);
                log.Information("incoming migration: listening on {Uri}", incoming!.Text);
                machine.Exited.ContinueWith(
                    _ =>
                    {
                        // quit, SIGTERM, SIGINT: a wait for the source (or for its next record) ends now.
                        listener.Dispose();
                        machine.Migration.InterruptIncoming();
                    },
                    TaskScheduler.Default);
            }

            using Socket? ownedListener = listener;

            // Before the guest starts: a monitor path that is in use (or not a socket) stops everything right here.
            using Vmm.Qmp.QmpServer? monitor = settings.MonitorPath is { } monitorPath ? Vmm.Qmp.QmpServer.Start(monitorPath, machine, log) : null;

            if (settings.Serial.Kind == SerialTargetKind.Stdio)
            {
                StdinPump.Start(machine.Serial);
            }

            if (listener is not null)
            {
                if (ReceiveIncoming(machine, listener) is { } failed)
                {
                    return failed;
                }
            }
            else
            {
                machine.Start();
                log.Information("guest {Image} running ({Memory} RAM)", image!.Path, SizeParser.Format(settings.MemorySize));
            }

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
        catch (AcceleratorUnavailableException e)
        {
            CliErrors.Print(e.Message);
            return MachineExit.StatusHostError;
        }
        catch (Vmm.Qmp.MonitorSocketException e)
        {
            CliErrors.Print(e.Message);
            return MachineExit.StatusUsageError;
        }
        catch (Ram.RamBackendException e)
        {
            CliErrors.Print(e.Message);
            return MachineExit.StatusHostError;
        }
        catch (MigrationFailedException e)
        {
            CliErrors.Print(e.Message);
            return MachineExit.StatusMigrationFailed;
        }
        finally
        {
            (sink as IDisposable)?.Dispose();
        }
    }

    /// <summary>
    /// Receives the guest (blocking). Returns null when the guest now runs here or the machine was told to quit
    /// while waiting, or the exit status of a failed migration (no guest runs then).
    /// </summary>
    private static int? ReceiveIncoming(VirtualMachine machine, Socket listener)
    {
        try
        {
            machine.Migration.RunIncoming(listener);
            return null;
        }
        catch (Exception) when (machine.Exited.IsCompleted)
        {
            return null;
        }
        catch (Exception e) when (e is MigrationFailedException or MigrationStreamException or InvalidDataException or IOException or SocketException)
        {
            CliErrors.Print($"incoming migration failed: {e.Message}");
            machine.RequestExit(new MachineExit(MachineExitKind.HostError, MachineExit.StatusMigrationFailed, "incoming migration failed"));
            return MachineExit.StatusMigrationFailed;
        }
    }

    private static void Interrupt(PosixSignalContext context, VirtualMachine machine)
    {
        context.Cancel = true;
        int signal = context.Signal == PosixSignal.SIGINT ? 2 : 15;
        machine.RequestExit(new MachineExit(MachineExitKind.Signal, 128 + signal, $"stopped by signal {context.Signal}"));
    }
}
