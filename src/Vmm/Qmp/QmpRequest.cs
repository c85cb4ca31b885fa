using System.Text.Json;

namespace Vmm.Qmp;

/// <summary>
/// One validated {"execute": …, "arguments": …, "id": …} request. The id is kept as the exact JSON text the client
/// sent, so the reply echoes it verbatim. Validation follows QEMU's qmp-dispatch wording.
/// </summary>
public sealed record QmpRequest(string Command, JsonElement? Arguments, string? IdJson)
{
    public static QmpRequest Parse(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new QmpRequestException(QmpException.Generic("QMP input must be a JSON object"), null);
        }

        string? idJson = root.TryGetProperty("id", out JsonElement id) ? id.GetRawText() : null;
        string? command = null;
        JsonElement? arguments = null;
        foreach (JsonProperty member in root.EnumerateObject())
        {
            switch (member.Name)
            {
                case "execute":
                    if (member.Value.ValueKind != JsonValueKind.String)
                    {
                        throw new QmpRequestException(QmpException.Generic("QMP input member 'execute' must be a string"), idJson);
                    }

                    command = member.Value.GetString();
                    break;

                case "arguments":
                    if (member.Value.ValueKind != JsonValueKind.Object)
                    {
                        throw new QmpRequestException(QmpException.Generic("QMP input member 'arguments' must be an object"), idJson);
                    }

                    arguments = member.Value;
                    break;

                case "id":
                    break;

                default:
                    throw new QmpRequestException(QmpException.Generic($"QMP input member '{member.Name}' is unexpected"), idJson);
            }
        }

        if (command is null)
        {
            throw new QmpRequestException(QmpException.Generic("QMP input lacks member 'execute'"), idJson);
        }

        return new QmpRequest(command, arguments, idJson);
    }
}
