using System.Text.Json;

namespace Vmm.Qmp.Client;

/// <summary>The answer to one command: its "return" value, or the error class and description.</summary>
public sealed record QmpResponse(JsonElement? Return, string? ErrorClass, string? ErrorDescription)
{
    public bool IsError => ErrorClass is not null;

    public static QmpResponse From(JsonElement message)
    {
        if (message.TryGetProperty("error", out JsonElement error))
        {
            string errorClass = error.TryGetProperty("class", out JsonElement c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : "GenericError";
            string description = error.TryGetProperty("desc", out JsonElement d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : error.GetRawText();
            return new QmpResponse(null, errorClass, description);
        }

        return new QmpResponse(message.TryGetProperty("return", out JsonElement value) ? value.Clone() : null, null, null);
    }
}
