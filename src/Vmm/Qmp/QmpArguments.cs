using System.Text.Json;

namespace Vmm.Qmp;

/// <summary>
/// A command's arguments, checked against its declared parameters before the command runs: every required one is
/// present, each has its declared type, and nothing undeclared was sent. Errors use QEMU's wording
/// ("Parameter 'val' is missing", "Parameter 'size' expects integer", "Parameter 'foo' is unexpected").
/// </summary>
public sealed class QmpArguments
{
    private readonly Dictionary<string, JsonElement> values;

    private QmpArguments(Dictionary<string, JsonElement> values) => this.values = values;

    public static QmpArguments Empty { get; } = new([]);

    public static QmpArguments Bind(IReadOnlyList<QmpParameter> parameters, JsonElement? arguments)
    {
        var given = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        if (arguments is { } members)
        {
            foreach (JsonProperty member in members.EnumerateObject())
            {
                // The last duplicate wins, as in QEMU's QDict (the parser rejects duplicates before this anyway).
                given[member.Name] = member.Value;
            }
        }

        // QEMU's order: declared parameters first (missing, mistyped), then anything left over.
        var bound = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (QmpParameter parameter in parameters)
        {
            if (!given.Remove(parameter.Name, out JsonElement value))
            {
                if (!parameter.Optional)
                {
                    throw QmpException.Generic($"Parameter '{parameter.Name}' is missing");
                }

                continue;
            }

            if (TypeError(parameter.Type, value) is { } expected)
            {
                throw QmpException.Generic($"Parameter '{parameter.Name}' expects {expected}");
            }

            bound[parameter.Name] = value;
        }

        if (given.Count > 0)
        {
            throw QmpException.Generic($"Parameter '{given.Keys.First()}' is unexpected");
        }

        return new QmpArguments(bound);
    }

    public bool Has(string name) => values.ContainsKey(name);

    public string GetString(string name) => values[name].GetString()!;

    public long GetInteger(string name) => values[name].GetInt64();

    public ulong GetUnsigned(string name) => values[name].GetUInt64();

    public bool GetBoolean(string name) => values[name].GetBoolean();

    public IReadOnlyList<JsonElement> GetObjectList(string name) => values[name].EnumerateArray().ToList();

    public IReadOnlyList<string> GetStringList(string name) => values[name].EnumerateArray().Select(e => e.GetString()!).ToList();

    public string? GetOptionalString(string name) => Has(name) ? GetString(name) : null;

    public long? GetOptionalInteger(string name) => Has(name) ? GetInteger(name) : null;

    /// <summary>Null when the value fits the type, else the type's name for the error.</summary>
    private static string? TypeError(QmpParameterType type, JsonElement value) => type switch
    {
        QmpParameterType.String => value.ValueKind == JsonValueKind.String ? null : "string",
        QmpParameterType.Boolean => value.ValueKind is JsonValueKind.True or JsonValueKind.False ? null : "boolean",
        QmpParameterType.Integer => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out _) ? null : "integer",
        QmpParameterType.Unsigned => value.ValueKind != JsonValueKind.Number || !(value.TryGetUInt64(out _) || value.TryGetInt64(out _))
            ? "integer"
            : value.TryGetUInt64(out _) ? null : "uint64",
        QmpParameterType.StringList => value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String)
            ? null
            : "array of strings",
        QmpParameterType.ObjectList => value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Object)
            ? null
            : "array of objects",
        _ => "a value of an unknown type",
    };
}
