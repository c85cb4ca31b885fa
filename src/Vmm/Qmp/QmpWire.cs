using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vmm.Qmp;

/// <summary>
/// The server's side of the wire: every message is one JSON object on one line ending in CR LF, written with
/// QEMU's spacing (<c>{"return": {}, "id": 1}</c>) so that scripts grepping QEMU's output work on vmm's too.
/// </summary>
public static class QmpWire
{
    private static readonly JsonSerializerOptions ValueOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static byte[] Greeting(JsonObject version) => Line(new JsonObject
    {
        ["QMP"] = new JsonObject
        {
            ["version"] = version,
            ["capabilities"] = new JsonArray(),
        },
    });

    /// <summary>{"return": RESULT, "id": ID}; <paramref name="idJson"/> is the request's id as it was sent, or null.</summary>
    public static byte[] Return(JsonNode? result, string? idJson)
    {
        var text = new StringBuilder("{\"return\": ");
        Append(text, result ?? new JsonObject());
        return Finish(text, idJson);
    }

    public static byte[] Error(string errorClass, string description, string? idJson)
    {
        var text = new StringBuilder("{\"error\": ");
        Append(text, new JsonObject { ["class"] = errorClass, ["desc"] = description });
        return Finish(text, idJson);
    }

    /// <summary>{"timestamp": {"seconds": S, "microseconds": U}, "event": NAME[, "data": DATA]} with wall-clock time, as QEMU sends.</summary>
    public static byte[] Event(string name, JsonObject? data, DateTimeOffset time)
    {
        long microseconds = (time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;
        var message = new JsonObject
        {
            ["timestamp"] = new JsonObject
            {
                ["seconds"] = microseconds / 1_000_000,
                ["microseconds"] = microseconds % 1_000_000,
            },
            ["event"] = name,
        };
        if (data is not null)
        {
            message["data"] = data;
        }

        return Line(message);
    }

    /// <summary>Writes <paramref name="node"/> in QEMU's style: ", " between members, ": " after keys.</summary>
    public static string Format(JsonNode? node)
    {
        var text = new StringBuilder();
        Append(text, node);
        return text.ToString();
    }

    private static byte[] Line(JsonNode node)
    {
        var text = new StringBuilder();
        Append(text, node);
        text.Append("\r\n");
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    private static byte[] Finish(StringBuilder text, string? idJson)
    {
        if (idJson is not null)
        {
            // Verbatim: clients match replies by comparing the id they sent, whatever JSON value it was.
            text.Append(", \"id\": ").Append(idJson);
        }

        text.Append("}\r\n");
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    private static void Append(StringBuilder text, JsonNode? node)
    {
        switch (node)
        {
            case null:
                text.Append("null");
                break;

            case JsonObject members:
                text.Append('{');
                bool first = true;
                foreach ((string key, JsonNode? value) in members)
                {
                    text.Append(first ? "" : ", ").Append(JsonSerializer.Serialize(key, ValueOptions)).Append(": ");
                    Append(text, value);
                    first = false;
                }

                text.Append('}');
                break;

            case JsonArray items:
                text.Append('[');
                for (int i = 0; i < items.Count; i++)
                {
                    text.Append(i == 0 ? "" : ", ");
                    Append(text, items[i]);
                }

                text.Append(']');
                break;

            default:
                text.Append(node.ToJsonString(ValueOptions));
                break;
        }
    }
}
