namespace Vmm.Qmp;

/// <summary>One declared argument of a command.</summary>
public sealed record QmpParameter(string Name, QmpParameterType Type, bool Optional = false)
{
    public static QmpParameter Required(string name, QmpParameterType type) => new(name, type);

    public static QmpParameter Maybe(string name, QmpParameterType type) => new(name, type, Optional: true);
}
