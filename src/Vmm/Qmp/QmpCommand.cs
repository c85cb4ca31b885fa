using System.Text.Json.Nodes;

namespace Vmm.Qmp;

/// <summary>Runs a command with arguments already checked against its parameters; returns the "return" value (null = {}).</summary>
public delegate JsonNode? QmpHandler(QmpCommandContext context, QmpArguments arguments);

/// <summary>A QMP command: its name, its declared parameters, and what it does.</summary>
public sealed record QmpCommand(string Name, IReadOnlyList<QmpParameter> Parameters, QmpHandler Handler)
{
    public QmpCommand(string name, QmpHandler handler)
        : this(name, [], handler)
    {
    }
}
