namespace Vmm.Qmp;

/// <summary>The monitor socket could not be set up; the message is a complete one-line explanation for the user.</summary>
public sealed class MonitorSocketException(string message, Exception? inner = null) : Exception(message, inner);
