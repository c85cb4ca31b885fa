namespace Vmm.Qmp;

/// <summary>The reply line for one request, and what must happen once it is queued (see <see cref="QmpCommandContext.AfterReply"/>).</summary>
public sealed record QmpReply(byte[] Line, IReadOnlyList<Action> AfterReply);
