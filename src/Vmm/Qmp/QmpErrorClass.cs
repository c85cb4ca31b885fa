namespace Vmm.Qmp;

/// <summary>QEMU's QMP error classes (qapi/error.json) that vmm reports.</summary>
public static class QmpErrorClass
{
    /// <summary>Everything that has no more specific class: bad input, bad arguments, failed operations.</summary>
    public const string GenericError = "GenericError";

    /// <summary>Unknown command, or a command not allowed in the current negotiation state.</summary>
    public const string CommandNotFound = "CommandNotFound";
}
