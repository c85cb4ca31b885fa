using System.Text.Json;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Qmp;

/// <summary>stop, cont, system_reset, quit, guest power-off: their effect on a real guest, and the events they raise.</summary>
[Collection(MonitorCollection.Name)]
public class QmpRunControlTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public void StopFreezesTheSpinCounterAndContResumesIt()
    {
        using MonitoredVmm vmm = MonitoredVmm.Start("spin");
        using QmpTestClient client = vmm.Connect();
        WaitUntil(() => vmm.ReadCounter(client) > 1000, "the spin guest never started counting");

        Assert.Equal(JsonValueKind.Object, client.Return("stop").ValueKind);
        AssertEvent(client.WaitForEvent("STOP"), hasData: false);
        JsonElement status = client.Return("query-status");
        Assert.False(status.GetProperty("running").GetBoolean());
        Assert.False(status.GetProperty("singlestep").GetBoolean());
        Assert.Equal("paused", status.GetProperty("status").GetString());
        Assert.Equal("VM status: paused\r\n", client.Return("human-monitor-command", new Dictionary<string, object> { ["command-line"] = "info status" }).GetString());

        uint stopped = vmm.ReadCounter(client);
        Thread.Sleep(300); // Standing still can only be shown by waiting: long enough for ~100000 increments.
        Assert.Equal(stopped, vmm.ReadCounter(client));

        // stop while stopped changes nothing and raises no second STOP.
        client.Return("stop");
        client.Return("cont");
        AssertEvent(client.WaitForEvent("RESUME"), hasData: false);
        Assert.Empty(client.Events);
        Assert.True(client.Return("query-status").GetProperty("running").GetBoolean());
        WaitUntil(() => vmm.ReadCounter(client) > stopped + 1000, "the guest did not resume counting");
    }

    [Fact]
    public void SystemResetRestartsTheSpinGuestFromItsFirstInstruction()
    {
        using MonitoredVmm vmm = MonitoredVmm.Start("spin");
        using QmpTestClient client = vmm.Connect();
        WaitUntil(() => vmm.ReadCounter(client) > 100_000, "the spin guest never got far");

        // Reset while stopped, so the state the reset left is what the registers show (a running guest on the
        // software CPU counts past any threshold before a test could look).
        client.Return("stop");
        client.Return("system_reset");
        Assert.Equal("host-qmp-system-reset", client.WaitForEvent("RESET").GetProperty("data").GetProperty("reason").GetString());
        string registers = client.Return("human-monitor-command", new Dictionary<string, object> { ["command-line"] = "info registers" }).GetString()!;
        Assert.Contains("EIP=00007c00", registers);
        Assert.True(vmm.ReadCounter(client) > 100_000, "a reset keeps RAM above the image");

        // The guest starts over: it prints its banner again, and its first act is to zero the counter.
        client.Return("cont");
        vmm.Process.WaitForStdout(s => s == "spin\r\nspin\r\n", Timeout);
        Assert.Equal("running", client.Return("query-status").GetProperty("status").GetString());
    }

    /// <summary>
    /// The echo guest sits in `in al, dx` polling COM1, so it is nearly always paused with a port read that KVM
    /// completes on the next KVM_RUN; the reset must not be undone by that completion.
    /// </summary>
    [Fact]
    public void SystemResetRestartsAGuestBusyWithPortIo()
    {
        using MonitoredVmm vmm = MonitoredVmm.Start("echo");
        using QmpTestClient client = vmm.Connect();
        vmm.Process.WaitForStdout(s => s.Contains("echo: ready\r\n"), Timeout);

        client.Return("system_reset");
        JsonElement reset = client.WaitForEvent("RESET");
        AssertEvent(reset, hasData: true);
        Assert.False(reset.GetProperty("data").GetProperty("guest").GetBoolean());
        Assert.Equal("host-qmp-system-reset", reset.GetProperty("data").GetProperty("reason").GetString());

        // Within milliseconds when it works; while it does not (the reset undone by a pending port read), fail quickly.
        vmm.Process.WaitForStdout(s => s.Split("echo: ready\r\n").Length == 3, TimeSpan.FromSeconds(10));
        Assert.Equal("running", client.Return("query-status").GetProperty("status").GetString());

        // And it is a working guest again: it echoes.
        vmm.Process.WriteInput("ping");
        vmm.Process.WaitForStdout(s => s.EndsWith("echo: ready\r\nping", StringComparison.Ordinal), Timeout);
    }

    [Fact]
    public void QuitAnswersThenSendsShutdownThenEndsTheProcessWithZeroAndRemovesTheSocket()
    {
        using MonitoredVmm vmm = MonitoredVmm.Start("spin");
        using QmpTestClient client = vmm.Connect();

        client.SendRaw("{\"execute\": \"quit\", \"id\": \"bye\"}");
        JsonElement reply = client.ReadMessage();
        Assert.Equal("bye", reply.GetProperty("id").GetString());
        Assert.Equal(JsonValueKind.Object, reply.GetProperty("return").ValueKind);

        JsonElement shutdown = client.ReadMessage();
        Assert.Equal("SHUTDOWN", shutdown.GetProperty("event").GetString());
        AssertEvent(shutdown, hasData: true);
        Assert.False(shutdown.GetProperty("data").GetProperty("guest").GetBoolean());
        Assert.Equal("host-qmp-quit", shutdown.GetProperty("data").GetProperty("reason").GetString());
        Assert.True(client.WaitForClose(Timeout));

        VmmResult result = vmm.Process.WaitForExit(Timeout);
        Assert.Equal(0, result.ExitCode);
        Assert.False(File.Exists(vmm.SocketPath), "the socket outlived the VMM");
    }

    [Fact]
    public void GuestPowerOffSendsShutdownToEveryClientBeforeTheVmmExits()
    {
        using MonitoredVmm vmm = MonitoredVmm.Start("echo");
        using QmpTestClient first = vmm.Connect();
        using QmpTestClient second = vmm.Connect();
        vmm.Process.WaitForStdout(s => s.Contains("echo: ready"), Timeout);

        vmm.Process.WriteInput("\u0004"); // EOT: the echo guest does cli; hlt.
        foreach (QmpTestClient client in new[] { first, second })
        {
            JsonElement shutdown = client.WaitForEvent("SHUTDOWN", Timeout);
            AssertEvent(shutdown, hasData: true);
            Assert.True(shutdown.GetProperty("data").GetProperty("guest").GetBoolean());
            Assert.Equal("guest-shutdown", shutdown.GetProperty("data").GetProperty("reason").GetString());
            Assert.True(client.WaitForClose(Timeout));
        }

        Assert.Equal(0, vmm.Process.WaitForExit(Timeout).ExitCode);
        Assert.False(File.Exists(vmm.SocketPath), "the socket outlived the VMM");
    }

    [Fact]
    public void TwoClientsAtOnceEachGetEveryEventOnlyOnceNegotiated()
    {
        using MonitoredVmm vmm = MonitoredVmm.Start("spin");
        using QmpTestClient controller = vmm.Connect();
        using QmpTestClient watcher = vmm.Connect();
        using QmpTestClient latecomer = vmm.Connect(negotiate: false);

        controller.Return("stop");
        controller.Return("cont");
        foreach (QmpTestClient client in new[] { controller, watcher })
        {
            JsonElement stop = client.WaitForEvent("STOP");
            JsonElement resume = client.WaitForEvent("RESUME");
            Assert.True(Microseconds(stop) <= Microseconds(resume));
        }

        // Not negotiated: no events were queued for it; its first message now is the reply.
        JsonElement reply = latecomer.Execute("qmp_capabilities");
        Assert.True(reply.TryGetProperty("return", out _), latecomer.LastLine);
        Assert.Empty(latecomer.Events);

        // Commands from both clients interleave freely.
        Assert.Equal("running", watcher.Return("query-status").GetProperty("status").GetString());
        Assert.Equal("running", controller.Return("query-status").GetProperty("status").GetString());
    }

    /// <summary>QEMU's event shape: {"timestamp": {"seconds", "microseconds"}, "event", ["data"]}, wall-clock time.</summary>
    internal static void AssertEvent(JsonElement message, bool hasData)
    {
        JsonElement timestamp = message.GetProperty("timestamp");
        long seconds = timestamp.GetProperty("seconds").GetInt64();
        long microseconds = timestamp.GetProperty("microseconds").GetInt64();
        Assert.InRange(microseconds, 0, 999_999);
        Assert.InRange(seconds, DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 120, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 5);
        Assert.Equal(JsonValueKind.String, message.GetProperty("event").ValueKind);
        Assert.Equal(hasData, message.TryGetProperty("data", out _));
    }

    private static long Microseconds(JsonElement message)
    {
        JsonElement timestamp = message.GetProperty("timestamp");
        return (timestamp.GetProperty("seconds").GetInt64() * 1_000_000) + timestamp.GetProperty("microseconds").GetInt64();
    }

    internal static void WaitUntil(Func<bool> condition, string failure)
    {
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            Thread.Sleep(10);
        }
    }
}
