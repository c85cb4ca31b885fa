namespace Vmm.Migration.Destination;

/// <summary>
/// A connection turned out not to be the migration before it sent a byte of it (a TLS peer that left right after the
/// handshake, its own check of our certificate having failed): the destination drops it and waits on.
/// </summary>
internal sealed class NotTheSourceException(string message) : Exception(message);
