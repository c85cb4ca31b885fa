namespace Vmm.Cli;

/// <summary>The one-line error format every verb uses on stderr.</summary>
public static class CliErrors
{
    public static void Print(string message) => Console.Error.WriteLine($"vmm: error: {message}");
}
