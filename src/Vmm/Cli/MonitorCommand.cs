using System.CommandLine;
using System.Diagnostics.CodeAnalysis;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vmm.Qmp.Client;

namespace Vmm.Cli;

/// <summary>
/// `dotnet vmm monitor PATH [COMMAND [JSON-ARGS]]`: a QMP client for a running VMM (or QEMU). With a command it runs
/// it once and prints the result; without one it is an interactive prompt that also shows events as they arrive.
/// Exit statuses: 0 done, 1 the command failed (or, interactively, the VMM closed the connection), 2 usage or
/// connection error.
/// </summary>
public static class MonitorCommand
{
    public const int StatusOk = 0;
    public const int StatusCommandFailed = 1;
    public const int StatusUsageOrConnection = 2;

    private const string HumanMonitorCommand = "human-monitor-command";

    private static readonly JsonSerializerOptions Pretty = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly object ConsoleGate = new();

    private static readonly Argument<string> SocketPath = new("path") { Description = "The monitor socket (PATH or unix:PATH, as given to run --monitor)" };
    private static readonly Argument<string?> CommandName = new("command") { Description = "QMP command to run, e.g. query-status; none for an interactive prompt", Arity = ArgumentArity.ZeroOrOne };
    private static readonly Argument<string[]> Arguments = new("json-args") { Description = "The command's arguments as a JSON object, e.g. '{\"val\": 31744, \"size\": 512, \"filename\": \"boot.bin\"}'", Arity = ArgumentArity.ZeroOrMore };

    public static Command Create()
    {
        var command = new Command("monitor", "Talk to a running VMM's QMP monitor: run one command, or an interactive prompt")
        {
            SocketPath, CommandName, Arguments,
        };
        command.SetAction((parse, cancellation) => ExecuteAsync(parse, cancellation));
        return command;
    }

    private static async Task<int> ExecuteAsync(ParseResult parse, CancellationToken cancellation)
    {
        string path = parse.GetValue(SocketPath)!;
        if (path.StartsWith("unix:", StringComparison.Ordinal))
        {
            path = path["unix:".Length..];
        }

        string? name = parse.GetValue(CommandName);
        JsonObject? arguments = null;
        if (name is not null && !TryParseArguments(string.Join(' ', parse.GetValue(Arguments) ?? []), out arguments, out string? problem))
        {
            CliErrors.Print(problem);
            return StatusUsageOrConnection;
        }

        QmpClient client;
        try
        {
            client = await QmpClient.ConnectAsync(path, cancellation);
        }
        catch (QmpConnectionException e)
        {
            CliErrors.Print(e.Message);
            return StatusUsageOrConnection;
        }

        await using (client)
        {
            return name is null
                ? await InteractiveAsync(client, cancellation)
                : await RunOnceAsync(client, name, arguments, cancellation);
        }
    }

    private static async Task<int> RunOnceAsync(QmpClient client, string name, JsonObject? arguments, CancellationToken cancellation)
    {
        QmpResponse response;
        try
        {
            response = await client.ExecuteAsync(name, arguments, cancellation);
        }
        catch (QmpConnectionException e)
        {
            CliErrors.Print(e.Message);
            return StatusUsageOrConnection;
        }

        if (response.IsError)
        {
            CliErrors.Print($"{response.ErrorClass}: {response.ErrorDescription}");
            return StatusCommandFailed;
        }

        Console.Out.Write(Render(name, response.Return));
        return StatusOk;
    }

    /// <summary>
    /// One command per line, `COMMAND [JSON-ARGS]`. `quit` or `exit` alone, or end of input, leaves the prompt and
    /// leaves the VM running; `quit {}` sends QMP quit to the VM.
    /// </summary>
    private static async Task<int> InteractiveAsync(QmpClient client, CancellationToken cancellation)
    {
        bool prompt = !Console.IsInputRedirected;
        bool quitSent = false;
        client.EventReceived += message => Print(Console.Out, RenderEvent(message));
        if (prompt)
        {
            Print(Console.Out, "Connected. Commands: COMMAND [JSON-ARGS], e.g. query-status; 'quit' or Ctrl-D leaves (the VM keeps running).\n");
        }

        while (true)
        {
            if (prompt)
            {
                Print(Console.Out, "(qmp) ");
            }

            Task<string?> nextLine = Console.In.ReadLineAsync(cancellation).AsTask();
            if (await Task.WhenAny(nextLine, client.Closed) != nextLine)
            {
                return ConnectionClosed(quitSent);
            }

            string? line = (await nextLine)?.Trim();
            if (line is null || line is "quit" or "exit")
            {
                return StatusOk;
            }

            if (line.Length == 0)
            {
                continue;
            }

            int split = line.IndexOfAny([' ', '\t']);
            string name = split < 0 ? line : line[..split];
            if (!TryParseArguments(split < 0 ? "" : line[split..], out JsonObject? arguments, out string? problem))
            {
                Print(Console.Error, $"error: {problem}\n");
                continue;
            }

            try
            {
                quitSent |= name == "quit";
                await client.ExecuteAsync(name, arguments, cancellation, response =>
                {
                    if (response.IsError)
                    {
                        Print(Console.Error, $"error: {response.ErrorClass}: {response.ErrorDescription}\n");
                    }
                    else
                    {
                        Print(Console.Out, Render(name, response.Return));
                    }
                });
            }
            catch (QmpConnectionException)
            {
                return ConnectionClosed(quitSent);
            }
        }
    }

    private static int ConnectionClosed(bool quitSent)
    {
        if (quitSent)
        {
            return StatusOk;
        }

        Print(Console.Error, "vmm: the monitor closed the connection (the VM has stopped)\n");
        return StatusCommandFailed;
    }

    private static bool TryParseArguments(string text, out JsonObject? arguments, [NotNullWhen(false)] out string? problem)
    {
        arguments = null;
        problem = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            return true;
        }

        try
        {
            if (JsonNode.Parse(text) is JsonObject parsed)
            {
                arguments = parsed;
                return true;
            }

            problem = $"arguments must be a JSON object, e.g. '{{\"size\": 4096}}', not: {text.Trim()}";
        }
        catch (JsonException e)
        {
            problem = $"arguments are not valid JSON: {e.Message}";
        }

        return false;
    }

    /// <summary>HMP output as the plain text it is; anything else as indented JSON.</summary>
    private static string Render(string command, JsonElement? result)
    {
        if (result is { ValueKind: JsonValueKind.String } text && command == HumanMonitorCommand)
        {
            return text.GetString()!.Replace("\r\n", "\n", StringComparison.Ordinal);
        }

        return (result is { } value ? JsonSerializer.Serialize(value, Pretty) : "{}") + "\n";
    }

    /// <summary>"event NAME {data}" on one line (data compact), easy to read and to grep.</summary>
    private static string RenderEvent(JsonElement message)
    {
        string name = message.GetProperty("event").GetString() ?? "?";
        return message.TryGetProperty("data", out JsonElement data)
            ? $"event {name} {JsonSerializer.Serialize(data, Compact)}\n"
            : $"event {name}\n";
    }

    private static void Print(TextWriter writer, string text)
    {
        lock (ConsoleGate)
        {
            writer.Write(text);
            writer.Flush();
        }
    }
}
