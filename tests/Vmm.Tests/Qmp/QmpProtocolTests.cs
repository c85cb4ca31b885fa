using System.Text;
using System.Text.Json;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Qmp;

/// <summary>
/// The QMP wire protocol against a running spin guest over a real Unix socket: greeting, negotiation, framing, ids,
/// and an error for every class of bad input, after which the session (and the guest) carry on.
/// </summary>
[Collection(MonitorCollection.Name)]
public class QmpProtocolTests(SpinVmmFixture fixture) : IClassFixture<SpinVmmFixture>
{
    [Fact]
    public void GreetingHasQemusShapeWithVmmsVersion()
    {
        using QmpTestClient client = fixture.Vmm.Connect(negotiate: false);

        JsonElement qmp = client.Greeting.GetProperty("QMP");
        JsonElement version = qmp.GetProperty("version");
        Assert.Equal(0, version.GetProperty("qemu").GetProperty("major").GetInt32());
        Assert.Equal(1, version.GetProperty("qemu").GetProperty("minor").GetInt32());
        Assert.Equal(0, version.GetProperty("qemu").GetProperty("micro").GetInt32());
        Assert.Equal("vmm", version.GetProperty("package").GetString());
        Assert.Equal(JsonValueKind.Array, qmp.GetProperty("capabilities").ValueKind);
        Assert.EndsWith("}", client.LastLine);
    }

    [Fact]
    public void CommandsNeedNegotiationFirstAndNegotiationHappensOnce()
    {
        using QmpTestClient client = fixture.Vmm.Connect(negotiate: false);

        Assert.Equal("Expecting capabilities negotiation with 'qmp_capabilities'", client.Error("query-status", errorClass: "CommandNotFound"));
        Assert.Equal("Expecting capabilities negotiation with 'qmp_capabilities'", client.Error("no-such-command", errorClass: "CommandNotFound"));
        Assert.Equal("Capability 'oob' not available", client.Error("qmp_capabilities", new { enable = new[] { "oob" } }));

        Assert.Equal(JsonValueKind.Object, client.Return("qmp_capabilities").ValueKind);
        Assert.Equal("Capabilities negotiation is already complete, command ignored", client.Error("qmp_capabilities", errorClass: "CommandNotFound"));
        Assert.True(client.Return("query-status").GetProperty("running").GetBoolean());

        // Each client negotiates for itself.
        using QmpTestClient other = fixture.Vmm.Connect(negotiate: false);
        Assert.Equal("Expecting capabilities negotiation with 'qmp_capabilities'", other.Error("query-status", errorClass: "CommandNotFound"));
    }

    [Theory]
    [InlineData("\"abc\"")]
    [InlineData("42")]
    [InlineData("-1.50e3")]
    [InlineData("{\"tag\": [1, \"two\", null, {\"deep\": true}]}")]
    [InlineData("[]")]
    [InlineData("null")]
    [InlineData("\"\\u00e9t\\u00e9 \\\"quoted\\\"\"")]
    public void IdIsEchoedVerbatim(string idJson)
    {
        using QmpTestClient client = fixture.Vmm.Connect();

        client.Execute("query-status", idJson: idJson);
        Assert.EndsWith($", \"id\": {idJson}}}", client.LastLine);

        client.Execute("no-such-command", idJson: idJson);
        Assert.Contains("CommandNotFound", client.LastLine);
        Assert.EndsWith($", \"id\": {idJson}}}", client.LastLine);
    }

    [Fact]
    public void MessagesMayComeBackToBackWithoutNewlinesAndSplitAnywhere()
    {
        using QmpTestClient client = fixture.Vmm.Connect();

        client.SendRaw("{\"execute\":\"query-status\",\"id\":1}{\"execute\":\"query-version\",\"id\":2}  \r\n\t{\"execute\":\"query-cpus-fast\",\"id\":3}");
        Assert.Equal(1, client.ReadReply().GetProperty("id").GetInt32());
        Assert.Equal(2, client.ReadReply().GetProperty("id").GetInt32());
        Assert.Equal(3, client.ReadReply().GetProperty("id").GetInt32());

        // One request dribbled out a byte at a time, with a brace inside a string to make sure strings are respected.
        byte[] request = Encoding.UTF8.GetBytes("{\"execute\": \"query-status\", \"id\": \"}{\\\"\"}");
        foreach (byte b in request)
        {
            client.SendRaw([b]);
        }

        JsonElement reply = client.ReadReply();
        Assert.Equal("}{\"", reply.GetProperty("id").GetString());
        Assert.Equal("running", reply.GetProperty("return").GetProperty("status").GetString());
    }

    [Fact]
    public void AnswersAreOneJsonObjectPerCrLfLine()
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        socket.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(fixture.Vmm.SocketPath));
        socket.Send(Encoding.UTF8.GetBytes("{\"execute\":\"qmp_capabilities\"}{\"execute\":\"query-commands\"}"));
        var text = new StringBuilder();
        byte[] buffer = new byte[65536];
        while (CountOf(text.ToString(), "\r\n") < 3)
        {
            int read = socket.Receive(buffer);
            Assert.True(read > 0, "connection closed early");
            text.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }

        string[] lines = text.ToString().Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        foreach (string line in lines)
        {
            Assert.DoesNotContain('\n', line);
            Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(line).RootElement.ValueKind);
        }
    }

    [Fact]
    public void UnknownCommandIsCommandNotFound()
    {
        using QmpTestClient client = fixture.Vmm.Connect();
        Assert.Equal("The command frobnicate has not been found", client.Error("frobnicate", errorClass: "CommandNotFound"));
    }

    [Theory]
    [InlineData("pmemsave", "{\"size\": 4, \"filename\": \"/tmp/x\"}", "Parameter 'val' is missing")]
    [InlineData("pmemsave", "{\"val\": 0, \"size\": \"big\", \"filename\": \"/tmp/x\"}", "Parameter 'size' expects integer")]
    [InlineData("pmemsave", "{\"val\": 0, \"size\": 1.5, \"filename\": \"/tmp/x\"}", "Parameter 'size' expects integer")]
    [InlineData("pmemsave", "{\"val\": 0, \"size\": -1, \"filename\": \"/tmp/x\"}", "Parameter 'size' expects uint64")]
    [InlineData("pmemsave", "{\"val\": 0, \"size\": 4, \"filename\": 7}", "Parameter 'filename' expects string")]
    [InlineData("pmemsave", "{\"val\": 0, \"size\": 4, \"filename\": \"/tmp/x\", \"foo\": 1}", "Parameter 'foo' is unexpected")]
    [InlineData("query-status", "{\"verbose\": true}", "Parameter 'verbose' is unexpected")]
    [InlineData("human-monitor-command", "{}", "Parameter 'command-line' is missing")]
    [InlineData("human-monitor-command", "{\"command-line\": [\"info\"]}", "Parameter 'command-line' expects string")]
    [InlineData("memsave", "{\"val\": 0, \"size\": 4, \"filename\": \"/tmp/x\", \"cpu-index\": \"0\"}", "Parameter 'cpu-index' expects integer")]
    [InlineData("qmp_capabilities", "{\"enable\": \"oob\"}", "Parameter 'enable' expects array of strings")]
    public void BadArgumentsAreGenericErrorsInQemusWords(string command, string argumentsJson, string expected)
    {
        using QmpTestClient client = fixture.Vmm.Connect(negotiate: command != "qmp_capabilities");

        client.SendRaw($"{{\"execute\": \"{command}\", \"arguments\": {argumentsJson}, \"id\": \"bad\"}}");
        JsonElement reply = client.ReadReply();
        Assert.Equal(expected, client.ErrorOf(reply));
        Assert.Equal("bad", reply.GetProperty("id").GetString());
        if (command == "qmp_capabilities")
        {
            client.Return("qmp_capabilities"); // the refused attempt left negotiation open
        }

        Assert.Equal("running", client.Return("query-status").GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("[1, 2]", "QMP input must be a JSON object")]
    [InlineData("42", "QMP input must be a JSON object")]
    [InlineData("\"query-status\"", "QMP input must be a JSON object")]
    [InlineData("{\"arguments\": {}}", "QMP input lacks member 'execute'")]
    [InlineData("{\"execute\": 5}", "QMP input member 'execute' must be a string")]
    [InlineData("{\"execute\": \"query-status\", \"arguments\": [1]}", "QMP input member 'arguments' must be an object")]
    [InlineData("{\"execute\": \"query-status\", \"colour\": \"red\"}", "QMP input member 'colour' is unexpected")]
    public void MalformedRequestsAreGenericErrors(string request, string expected)
    {
        using QmpTestClient client = fixture.Vmm.Connect();

        // The newline ends a top-level number, which (as in QEMU) is not complete until something follows it.
        client.SendRaw(request + "\n");
        Assert.Equal(expected, client.ErrorOf(client.ReadReply()));
        Assert.Equal("running", client.Return("query-status").GetProperty("status").GetString());
    }

    [Fact]
    public void MalformedJsonIsAParseErrorAndTheSessionCarriesOn()
    {
        using QmpTestClient client = fixture.Vmm.Connect();

        (byte[] Input, string Expected)[] cases =
        [
            (Encoding.UTF8.GetBytes("{\"execute\": }\n"), "JSON parse error"),
            (Encoding.UTF8.GetBytes("{\"execute\" \"query-status\"}\n"), "JSON parse error"),
            (Encoding.UTF8.GetBytes("{\"execute\": \"query-status\",}\n"), "JSON parse error"),
            ([.. "{\"execute\": \""u8, 0xC3, 0x28, .. "\"}\n"u8], "JSON parse error, invalid UTF-8"),
            ([.. "{\"execute\": \""u8, 0xFF, 0xFE, .. "\"}\n"u8], "JSON parse error, invalid UTF-8"),
            (Encoding.UTF8.GetBytes("{\"execute\": \"query-status\", \"execute\": \"stop\"}\n"), "JSON parse error"),
            (Encoding.UTF8.GetBytes("}\n"), "JSON parse error, stray '}'"),
            (Encoding.UTF8.GetBytes("{\"a\": [1}\n"), "JSON parse error, '}' where ']' was expected"),
            (Encoding.UTF8.GetBytes("nonsense\n"), "JSON parse error"),
            ([0x01, 0x80, 0xFF, (byte)'\n'], "JSON parse error, invalid byte 0x01"),
            (Encoding.UTF8.GetBytes("{\"execute\": \"query-\nstatus\"}\n"), "JSON parse error, control character 0x0a in string"),
        ];

        foreach ((byte[] input, string expected) in cases)
        {
            client.SendRaw(input);
            Assert.StartsWith(expected, client.ErrorOf(client.ReadReply()));

            // Resynchronized: the very next request is understood.
            Assert.Equal("running", client.Return("query-status").GetProperty("status").GetString());
        }
    }

    [Fact]
    public void DeepNestingIsRefusedOnceAndTheSessionCarriesOn()
    {
        using QmpTestClient client = fixture.Vmm.Connect();

        string deep = new string('[', 5000) + new string(']', 5000);
        client.SendRaw($"{{\"execute\": \"query-status\", \"arguments\": {{\"x\": {deep}}}, \"id\": 1}}{{\"execute\": \"query-status\", \"id\": 2}}");
        Assert.Contains("nesting depth limit", client.ErrorOf(client.ReadReply()));
        JsonElement next = client.ReadReply();
        Assert.Equal(2, next.GetProperty("id").GetInt32());
        Assert.Equal("running", next.GetProperty("return").GetProperty("status").GetString());
    }

    [Fact]
    public void AMessageNearTheSizeLimitIsStillParsed()
    {
        using QmpTestClient client = fixture.Vmm.Connect();

        string big = new('a', (1 << 20) - 200);
        client.SendRaw($"{{\"execute\": \"human-monitor-command\", \"arguments\": {{\"command-line\": \"{big}\"}}}}");
        JsonElement reply = client.ReadReply();
        Assert.StartsWith("unknown command: 'aaaa", reply.GetProperty("return").GetString());
    }

    [Fact]
    public void AnOversizedMessageClosesThatClientOnly()
    {
        using QmpTestClient bystander = fixture.Vmm.Connect();
        using QmpTestClient client = fixture.Vmm.Connect();

        client.SendRaw("{\"execute\": \"query-status\", \"arguments\": {\"x\": \"" + new string('z', (1 << 20) + 100) + "\"}}");
        Assert.Contains("size limit", client.ErrorOf(client.ReadReply()));
        Assert.True(client.WaitForClose(TimeSpan.FromSeconds(10)), "the server kept the connection open");

        Assert.Equal("running", bystander.Return("query-status").GetProperty("status").GetString());
        using QmpTestClient fresh = fixture.Vmm.Connect();
        Assert.Equal("running", fresh.Return("query-status").GetProperty("status").GetString());
    }

    [Fact]
    public void ClientsVanishingMidCommandOrMidMessageHurtNobody()
    {
        for (int i = 0; i < 20; i++)
        {
            using QmpTestClient client = fixture.Vmm.Connect();
            string file = Path.Combine(fixture.Vmm.Directory, $"vanish-{i}.bin");
            client.SendRaw(i % 2 == 0
                ? $"{{\"execute\": \"pmemsave\", \"arguments\": {{\"val\": 0, \"size\": 16777216, \"filename\": \"{file}\"}}}}{{\"execute\": \"query-commands\"}}"
                : "{\"execute\": \"query-sta");
        }

        using QmpTestClient survivor = fixture.Vmm.Connect();
        Assert.Equal("running", survivor.Return("query-status").GetProperty("status").GetString());
        Assert.False(fixture.Vmm.Process.HasExited);
        Assert.DoesNotContain("Unhandled", fixture.Vmm.Process.Stderr);
    }

    private static int CountOf(string text, string part)
    {
        int count = 0;
        for (int at = text.IndexOf(part, StringComparison.Ordinal); at >= 0; at = text.IndexOf(part, at + part.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}
