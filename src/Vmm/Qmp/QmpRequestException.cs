namespace Vmm.Qmp;

/// <summary>A malformed request. Carries the request's id, when it had one, so even this error can be matched.</summary>
public sealed class QmpRequestException(QmpException error, string? idJson) : Exception(error.Message, error)
{
    public QmpException Error { get; } = error;

    public string? IdJson { get; } = idJson;
}
