using System.CommandLine;

namespace Vmm.Cli;

/// <summary>The `dotnet vmm` verbs.</summary>
public static class VmmCommandLine
{
    public static RootCommand Create() => new("vmm: a minimal virtual machine monitor for x86 real-mode guests on KVM")
    {
        RunCommand.Create(),
        MonitorCommand.Create(),
        MigrateCommand.Create(),
    };

    public static int Invoke(string[] args)
    {
        ParseResult parse = Create().Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                CliErrors.Print(error.Message);
            }

            Console.Error.WriteLine("Run 'dotnet vmm --help' for usage.");
            return Machine.MachineExit.StatusUsageError;
        }

        return parse.Invoke();
    }
}
