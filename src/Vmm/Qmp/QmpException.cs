namespace Vmm.Qmp;

/// <summary>A command or request failure that becomes a QMP error reply: {"error": {"class": …, "desc": …}}.</summary>
public sealed class QmpException(string errorClass, string description) : Exception(description)
{
    public string ErrorClass { get; } = errorClass;

    public static QmpException Generic(string description) => new(QmpErrorClass.GenericError, description);

    public static QmpException CommandNotFound(string description) => new(QmpErrorClass.CommandNotFound, description);
}
