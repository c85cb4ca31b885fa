namespace Vmm.Qmp.Client;

/// <summary>The monitor could not be reached, or the connection broke or spoke something other than QMP.</summary>
public sealed class QmpConnectionException(string message, Exception? inner = null) : Exception(message, inner);
