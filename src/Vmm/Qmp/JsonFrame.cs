namespace Vmm.Qmp;

/// <summary>
/// One thing the framer found in a client's byte stream: a complete top-level JSON value (not yet parsed), or an
/// error to report. A fatal error means the stream cannot be trusted any more and the client is disconnected.
/// </summary>
public readonly record struct JsonFrame(byte[]? Message, string? Error, bool Fatal)
{
    public static JsonFrame OfMessage(byte[] message) => new(message, null, false);

    public static JsonFrame OfError(string error, bool fatal = false) => new(null, error, fatal);
}
