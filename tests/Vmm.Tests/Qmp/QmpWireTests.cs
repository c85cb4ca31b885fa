using System.Text;
using System.Text.Json.Nodes;
using Vmm.Qmp;

namespace Vmm.Tests.Qmp;

/// <summary>What the server writes: QEMU's spacing, CR LF, verbatim ids, event timestamps.</summary>
public class QmpWireTests
{
    [Fact]
    public void RepliesUseQemusSpacingAndEndInCrLf()
    {
        var result = new JsonObject { ["running"] = true, ["list"] = new JsonArray(1, "two"), ["empty"] = new JsonObject() };
        Assert.Equal("{\"return\": {\"running\": true, \"list\": [1, \"two\"], \"empty\": {}}, \"id\": {\"x\":[1 ,2]}}\r\n",
            Encoding.UTF8.GetString(QmpWire.Return(result, "{\"x\":[1 ,2]}")));
        Assert.Equal("{\"return\": {}}\r\n", Encoding.UTF8.GetString(QmpWire.Return(null, null)));
    }

    [Fact]
    public void ErrorsCarryClassAndDescription()
    {
        Assert.Equal("{\"error\": {\"class\": \"GenericError\", \"desc\": \"it's \\\"bad\\\"\"}, \"id\": 7}\r\n",
            Encoding.UTF8.GetString(QmpWire.Error(QmpErrorClass.GenericError, "it's \"bad\"", "7")));
    }

    [Fact]
    public void EventsHaveQemusTimestampFirst()
    {
        var time = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_123).AddTicks(4560);
        Assert.Equal("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}\r\n",
            Encoding.UTF8.GetString(QmpWire.Event("SHUTDOWN", new JsonObject { ["guest"] = true, ["reason"] = "guest-shutdown" }, time)));
        Assert.Equal("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, \"event\": \"STOP\"}\r\n",
            Encoding.UTF8.GetString(QmpWire.Event("STOP", null, time)));
    }

    [Fact]
    public void TextIsNotNeedlesslyEscaped()
    {
        Assert.Equal("\"'c' <x> & é\\r\\n\"", QmpWire.Format(JsonValue.Create("'c' <x> & é\r\n")));
    }
}
