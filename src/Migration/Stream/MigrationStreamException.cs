namespace Vmm.Migration.Stream;

/// <summary>A stream that is corrupt, truncated, of another version, or a peer that broke the protocol.</summary>
public sealed class MigrationStreamException(string message, Exception? inner = null) : IOException(message, inner);
