using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Vmm.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Vmm.Tests.Qmp;

/// <summary>
/// Thousands of random and malformed messages from several clients at once at the monitor of a running dirty guest:
/// afterwards the guest is still making passes (printing 'B') and a fresh client gets correct answers.
/// </summary>
[Collection(MonitorCollection.Name)]
public class MonitorRobustnessTests(ITestOutputHelper output)
{
    private const int Clients = 4;
    private const int MessagesPerClient = 2500;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(45);

    [Fact]
    public void ABarrageOfBadInputLeavesTheGuestRunningAndTheMonitorAnswering()
    {
        using MonitoredVmm vmm = MonitoredVmm.Start("dirty", "--memory", "32M");
        vmm.Process.WaitForStdout(s => s.Count(c => c == 'B') >= 3, TimeSpan.FromSeconds(30));

        int seed = Environment.TickCount;
        output.WriteLine($"seed {seed}");
        var clock = Stopwatch.StartNew();
        Barrage[] barrages = [.. Enumerable.Range(0, Clients).Select(i => new Barrage(vmm, seed + i, clock))];
        Task.WaitAll([.. barrages.Select(b => Task.Factory.StartNew(b.Run, TaskCreationOptions.LongRunning))]);

        int sent = barrages.Sum(b => b.Sent);
        long answers = barrages.Sum(b => b.Answers);
        output.WriteLine($"{sent} messages, {answers} answer lines, {barrages.Sum(b => b.Connections)} connections in {clock.Elapsed}");
        Assert.True(sent >= 3000, $"only {sent} messages were sent within {Budget}");
        Assert.True(answers >= 1000, $"the monitor answered only {answers} lines");
        Assert.False(vmm.Process.HasExited, $"the VMM died: {vmm.Process.Stderr}");

        // The guest is still running its passes...
        int passes = vmm.Process.Stdout.Count(c => c == 'B');
        vmm.Process.WaitForStdout(s => s.Count(c => c == 'B') >= passes + 3, TimeSpan.FromSeconds(30));

        // ...and a fresh client is served correctly.
        using QmpTestClient client = vmm.Connect();
        Assert.Equal("running", client.Return("query-status").GetProperty("status").GetString());
        Assert.Equal("vmm", client.Return("query-version").GetProperty("package").GetString());
        Assert.Equal("pc.ram", client.Return("query-ram-blocks")[0].GetProperty("name").GetString());
        Assert.DoesNotContain("Unhandled", vmm.Process.Stderr);
        Assert.DoesNotContain("internal error", vmm.Process.Stderr);
    }

    /// <summary>One client's share: a seeded random mix of garbage and good requests, reconnecting when thrown out.</summary>
    private sealed class Barrage(MonitoredVmm vmm, int seed, Stopwatch clock)
    {
        private static readonly string[] ValidRequests =
        [
            "{\"execute\": \"query-status\"}",
            "{\"execute\": \"query-version\", \"id\": 1}",
            "{\"execute\": \"query-commands\"}",
            "{\"execute\": \"query-cpus-fast\"}",
            "{\"execute\": \"query-ram-blocks\", \"id\": [\"x\"]}",
            "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"info status\"}}",
            "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"xp /16xb 0x100000\"}}",
            "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"info registers\"}}",
            "{\"execute\": \"qmp_capabilities\"}",
        ];

        private static readonly string[] WrongTypes =
        [
            "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": \"zero\", \"size\": 4, \"filename\": \"x\"}}",
            "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": 0, \"size\": -4, \"filename\": \"x\"}}",
            "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": 0, \"size\": 4, \"filename\": {}}}",
            "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": 1e400, \"size\": 4, \"filename\": \"x\"}}",
            "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": 18446744073709551615, \"size\": 2, \"filename\": \"/nonexistent/x\"}}",
            "{\"execute\": \"memsave\", \"arguments\": {\"val\": 0, \"size\": 4, \"filename\": \"x\", \"cpu-index\": 99}}",
            "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": 7}}",
            "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"x /99999999xg 0\"}}",
            "{\"execute\": \"query-status\", \"arguments\": {\"a\": 1}}",
            "{\"execute\": [\"query-status\"]}",
            "{\"execute\": \"query-status\", \"arguments\": null}",
            "{\"arguments\": {}}",
            "[\"execute\", \"stop\"]",
            "{\"execute\": \"query-status\", \"execute\": \"stop\"}",
            "3.14159",
            "\"quit\"",
            "null",
        ];

        private readonly Random random = new(seed);
        private Socket? socket;
        private long answers;

        public int Sent { get; private set; }

        public int Connections { get; private set; }

        public long Answers => Interlocked.Read(ref answers);

        public void Run()
        {
            try
            {
                while (Sent < MessagesPerClient && clock.Elapsed < Budget)
                {
                    if (random.Next(40) == 0)
                    {
                        Vanish();
                        Sent++;
                        continue;
                    }

                    byte[] message = Next();
                    try
                    {
                        EnsureConnected().Send(message);
                        Sent++;
                    }
                    catch (SocketException)
                    {
                        // Thrown out (oversized message) or the connection broke: the next message reconnects.
                        Disconnect();
                    }
                }
            }
            finally
            {
                Disconnect();
            }
        }

        private Socket EnsureConnected()
        {
            if (socket is { Connected: true })
            {
                return socket;
            }

            Disconnect();
            var fresh = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            fresh.Connect(new UnixDomainSocketEndPoint(vmm.SocketPath));
            socket = fresh;
            Connections++;

            // Most clients negotiate, so that commands (not just the negotiation error) get exercised.
            if (random.Next(4) != 0)
            {
                fresh.Send("{\"execute\": \"qmp_capabilities\"}\n"u8.ToArray());
            }

            // Drain answers on the side so the server never blocks on this client.
            var drain = new Thread(() => Drain(fresh)) { IsBackground = true };
            drain.Start();
            return fresh;
        }

        private void Drain(Socket connection)
        {
            byte[] buffer = new byte[64 * 1024];
            try
            {
                int read;
                while ((read = connection.Receive(buffer)) > 0)
                {
                    Interlocked.Add(ref answers, buffer.AsSpan(0, read).Count((byte)'\n'));
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Closed by us or by the server.
            }
        }

        /// <summary>A client that sends a request (or half of one) and disappears without reading the answer.</summary>
        private void Vanish()
        {
            using var ghost = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            ghost.Connect(new UnixDomainSocketEndPoint(vmm.SocketPath));
            ghost.Send(random.Next(2) == 0
                ? "{\"execute\": \"qmp_capabilities\"}{\"execute\": \"query-commands\"}{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"xp /4096xb 0\"}}"u8.ToArray()
                : "{\"execute\": \"qmp_capabilities\"}{\"execute\": \"query-sta"u8.ToArray());
        }

        private void Disconnect()
        {
            socket?.Dispose();
            socket = null;
        }

        private byte[] Next()
        {
            int kind = random.Next(100);
            return kind switch
            {
                < 15 => RandomBytes(random.Next(1, 300)),
                < 27 => Truncated(),
                < 34 => Encoding.UTF8.GetBytes(DeepNesting(random.Next(50, 3000))),
                < 35 => Encoding.UTF8.GetBytes(HugeString(random.Next(2) == 0 ? JsonLimitMinus(random.Next(100, 5000)) : JsonLimitMinus(-random.Next(1, 5000)))),
                < 50 => Encoding.UTF8.GetBytes(WrongTypes[random.Next(WrongTypes.Length)] + Separator()),
                < 60 => Encoding.UTF8.GetBytes($"{{\"execute\": \"{RandomName()}\", \"id\": {random.Next()}}}" + Separator()),
                < 66 => InvalidUtf8(),
                < 72 => Encoding.UTF8.GetBytes(new[] { "}", "]", ",", ":", "}}}]]", "\u0004", "{\"a\":}", "{]", "'single'" }[random.Next(9)] + "\n"),
                _ => Encoding.UTF8.GetBytes(ValidRequests[random.Next(ValidRequests.Length)] + Separator()),
            };
        }

        private string Separator() => random.Next(3) switch
        {
            0 => "",
            1 => "\n",
            _ => "\r\n",
        };

        private byte[] RandomBytes(int length)
        {
            byte[] bytes = new byte[length];
            random.NextBytes(bytes);
            return bytes;
        }

        /// <summary>A good request cut short, then a newline: the framer has to find its way back.</summary>
        private byte[] Truncated()
        {
            string request = ValidRequests[random.Next(ValidRequests.Length)];
            return Encoding.UTF8.GetBytes(request[..random.Next(1, request.Length)] + "\n");
        }

        private string DeepNesting(int depth)
        {
            bool closed = random.Next(4) != 0;
            string open = string.Concat(Enumerable.Range(0, depth).Select(_ => random.Next(2) == 0 ? "[" : "{\"k\":"));
            string body = $"{{\"execute\": \"query-status\", \"arguments\": {{\"deep\": {open}1";
            if (!closed)
            {
                return body + "\n";
            }

            var close = new StringBuilder();
            for (int i = open.Length - 1; i >= 0; i--)
            {
                if (open[i] == '[')
                {
                    close.Append(']');
                }
                else if (open[i] == '{')
                {
                    close.Append('}');
                }
            }

            return body + close + "}}" + Separator();
        }

        private static int JsonLimitMinus(int margin) => (1 << 20) - margin;

        private string HugeString(int totalLength)
        {
            const string prefix = "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"";
            const string suffix = "\"}}";
            int filler = Math.Max(0, totalLength - prefix.Length - suffix.Length);
            return prefix + new string((char)('a' + random.Next(26)), filler) + suffix + Separator();
        }

        private byte[] InvalidUtf8()
        {
            byte[][] sequences = [[0xC3, 0x28], [0xE2, 0x28, 0xA1], [0xF0, 0x28, 0x8C, 0x28], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xFE], [0xFF]];
            return [.. "{\"execute\": \""u8, .. sequences[random.Next(sequences.Length)], .. "\"}\n"u8];
        }

        private string RandomName()
        {
            const string alphabet = "abcdefghijklmnopqrstuvwxyz-_";
            return new string([.. Enumerable.Range(0, random.Next(1, 30)).Select(_ => alphabet[random.Next(alphabet.Length)])]);
        }
    }
}
