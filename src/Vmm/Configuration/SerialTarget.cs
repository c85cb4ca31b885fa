namespace Vmm.Configuration;

/// <summary>Where COM1 goes: --serial stdio | file:PATH | none.</summary>
public sealed record SerialTarget(SerialTargetKind Kind, string? Path = null)
{
    public static bool TryParse(string text, out SerialTarget target)
    {
        target = new SerialTarget(SerialTargetKind.Stdio);
        switch (text.Trim())
        {
            case "stdio":
                return true;
            case "none":
                target = new SerialTarget(SerialTargetKind.None);
                return true;
            case var s when s.StartsWith("file:", StringComparison.Ordinal) && s.Length > "file:".Length:
                target = new SerialTarget(SerialTargetKind.File, s["file:".Length..]);
                return true;
            default:
                return false;
        }
    }
}

public enum SerialTargetKind
{
    Stdio,
    File,
    None,
}
