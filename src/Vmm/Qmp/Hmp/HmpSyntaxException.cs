namespace Vmm.Qmp.Hmp;

/// <summary>An HMP command line that cannot be understood; the message is what the monitor prints (QEMU prints, not fails).</summary>
public sealed class HmpSyntaxException(string message) : Exception(message);
