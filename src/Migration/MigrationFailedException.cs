namespace Vmm.Migration;

/// <summary>A migration that cannot go on; the message is what query-migrate reports as error-desc.</summary>
public sealed class MigrationFailedException(string message, Exception? inner = null) : Exception(message, inner);
