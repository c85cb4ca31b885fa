using Microsoft.Extensions.Configuration;

namespace Vmm.Configuration;

/// <summary>
/// Layers the sources: defaults (in <see cref="VmmOptions"/>), then vmm.json (the current directory's, or the one
/// named by --config / VMM_CONFIG), then VMM_* environment variables, then the command line.
/// </summary>
public static class VmmConfiguration
{
    public const string DefaultFileName = "vmm.json";
    public const string EnvironmentPrefix = "VMM_";

    public static VmmOptions Build(IReadOnlyDictionary<string, string?> commandLine, string? configFile)
    {
        string? explicitFile = configFile ?? Environment.GetEnvironmentVariable(EnvironmentPrefix + "CONFIG");
        if (explicitFile is not null && !File.Exists(explicitFile))
        {
            throw new OptionsException([$"config: file '{explicitFile}' not found"]);
        }

        string file = Path.GetFullPath(explicitFile ?? DefaultFileName);
        var builder = new ConfigurationBuilder()
            .AddJsonFile(file, optional: explicitFile is null, reloadOnChange: false)
            .AddEnvironmentVariables(EnvironmentPrefix)
            .AddInMemoryCollection(commandLine);

        IConfigurationRoot root;
        try
        {
            root = builder.Build();
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or System.Text.Json.JsonException)
        {
            throw new OptionsException([$"config: {file} is not valid JSON: {e.InnerException?.Message ?? e.Message}"]);
        }

        var options = new VmmOptions();
        try
        {
            root.Bind(options, binder => binder.ErrorOnUnknownConfiguration = false);
        }
        catch (InvalidOperationException e)
        {
            throw new OptionsException([$"config: {e.InnerException?.Message ?? e.Message}"]);
        }

        return options;
    }
}
