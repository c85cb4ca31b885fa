namespace Vmm.Configuration;

/// <summary>Invalid configuration: every problem found, one line each, so the user fixes them in one go.</summary>
public sealed class OptionsException(IReadOnlyList<string> problems) : Exception(string.Join(Environment.NewLine, problems))
{
    public IReadOnlyList<string> Problems { get; } = problems;
}
