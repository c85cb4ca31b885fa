using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Spectre.Console.Rendering;
using Vmm.Configuration;
using Vmm.Migration;
using Vmm.Qmp.Client;

namespace Vmm.Cli;

/// <summary>
/// `dotnet vmm migrate --monitor PATH --to URI [--downtime-limit MS] [--max-bandwidth BYTES_PER_S]`: drives a precopy
/// migration through the source's QMP monitor (migrate-set-parameters, migrate, then query-migrate every 100 ms),
/// shows live progress (Spectre.Console on a terminal, one plain line per second and per change otherwise) and ends
/// with a summary table. stdout carries only the progress and the summary; errors go to stderr.
/// Exit statuses: 0 completed, 1 failed or cancelled, 2 usage or monitor connection error. Ctrl-C (SIGINT) or
/// SIGTERM sends migrate_cancel and waits for the source to settle; a second one ends the client at once.
/// </summary>
public static class MigrateCommand
{
    public const int StatusCompleted = 0;
    public const int StatusFailed = 1;
    public const int StatusUsageOrConnection = 2;

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan PlainLineInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);

    private static readonly Option<string> MonitorOption = new("--monitor") { Description = "The source VMM's QMP monitor socket (PATH or unix:PATH, as given to run --monitor)", HelpName = "PATH", Required = true };
    private static readonly Option<string> To = new("--to") { Description = "Where the destination (run --incoming URI) listens: tcp:HOST:PORT | unix:PATH", HelpName = "URI", Required = true };
    private static readonly Option<string> DowntimeLimit = new("--downtime-limit") { Description = "Largest acceptable pause of the guest at switchover, in milliseconds (migrate-set-parameters downtime-limit)", HelpName = "MS" };
    private static readonly Option<bool> Postcopy = new("--postcopy") { Description = "Switch to postcopy (migrate-start-postcopy) once precopy has run for --postcopy-after seconds; enables postcopy-ram on the source" };
    private static readonly Option<string> PostcopyAfter = new("--postcopy-after") { Description = "Seconds of precopy before switching to postcopy [default: 0.2]", HelpName = "SECONDS" };
    private static readonly Option<bool> NoMinorFaults = new("--no-minor-faults") { Description = "With --postcopy: turn postcopy-minor-faults off on the source (shared and hugetlbfs RAM then use MISSING faults only)" };
    private static readonly Option<bool> NoPreempt = new("--no-preempt") { Description = "With --postcopy: turn postcopy-preempt off on the source (page-request answers then share the main connection with the push)" };
    private static readonly Option<string> DestinationMonitor = new("--destination-monitor") { Description = "The destination's QMP monitor: with --postcopy, postcopy-ram is enabled there too (otherwise do it yourself)", HelpName = "PATH" };
    private static readonly Option<bool> Resume = new("--resume") { Description = "Resume a postcopy paused on a broken connection: migrate-recover on the destination (with --destination-monitor), then migrate with resume to --to" };
    private static readonly Option<bool> Xbzrle = new("--xbzrle") { Description = "Enable the xbzrle capability on the source: precopy sends pages sent before as deltas against the bytes sent then" };
    private static readonly Option<string> XbzrleCacheSize = new("--xbzrle-cache-size") { Description = "With --xbzrle: the source's cache of sent pages in bytes, K/M/G suffixes allowed, 4K to 1G (migrate-set-parameters xbzrle-cache-size) [default: 64M]", HelpName = "BYTES" };
    private static readonly Option<bool> NoSparsePages = new("--no-sparse-pages") { Description = "Turn sparse-pages off on the source: every data page goes whole (needed to migrate to an older vmm, which refuses sparse pages)" };
    private static readonly Option<string> MaxBandwidth = new("--max-bandwidth") { Description = "Bandwidth cap in bytes per second, K/M/G suffixes allowed; 0 = unlimited (migrate-set-parameters max-bandwidth)", HelpName = "BYTES_PER_S" };

    public static Command Create()
    {
        var command = new Command("migrate", "Live-migrate the guest of a running VMM (precopy, optionally switching to postcopy) through its monitor, with live progress")
        {
            MonitorOption, To, DowntimeLimit, MaxBandwidth, Xbzrle, XbzrleCacheSize, NoSparsePages, Postcopy, PostcopyAfter, NoMinorFaults, NoPreempt, DestinationMonitor, Resume,
        };

        // Synchronous on purpose: System.CommandLine installs its own Ctrl-C handling for asynchronous actions, and
        // Ctrl-C here must cancel the migration, not the client.
        command.SetAction(Execute);
        return command;
    }

    private static int Execute(ParseResult parse)
    {
        string path = parse.GetValue(MonitorOption)!;
        if (path.StartsWith("unix:", StringComparison.Ordinal))
        {
            path = path["unix:".Length..];
        }

        string uri = parse.GetValue(To)!;
        var problems = new List<string>();
        if (!MigrationUri.TryParse(uri, out _, out string? uriError))
        {
            problems.Add($"--to: {uriError}");
        }

        var parameters = new JsonObject();
        if (parse.GetValue(DowntimeLimit) is { } downtimeText)
        {
            if (SizeParser.TryParseNumber(downtimeText, out ulong downtime) && downtime <= 2_000_000)
            {
                parameters["downtime-limit"] = downtime;
            }
            else
            {
                problems.Add($"--downtime-limit: '{downtimeText}' is not a number of milliseconds from 0 to 2000000");
            }
        }

        if (parse.GetValue(MaxBandwidth) is { } bandwidthText)
        {
            if (SizeParser.TryParseSize(bandwidthText, out ulong bandwidth))
            {
                parameters["max-bandwidth"] = bandwidth;
            }
            else
            {
                problems.Add($"--max-bandwidth: '{bandwidthText}' is not a number of bytes per second (e.g. 100M; 0 = unlimited)");
            }
        }

        bool xbzrle = parse.GetValue(Xbzrle);
        if (parse.GetValue(XbzrleCacheSize) is { } cacheText)
        {
            if (!xbzrle)
            {
                problems.Add("--xbzrle-cache-size goes with --xbzrle");
            }
            else if (SizeParser.TryParseSize(cacheText, out ulong cacheSize) && cacheSize is >= 4096 and <= 1ul << 30)
            {
                parameters["xbzrle-cache-size"] = cacheSize;
            }
            else
            {
                problems.Add($"--xbzrle-cache-size: '{cacheText}' is not a size from 4K to 1G");
            }
        }

        PostcopyPlan? postcopy = null;
        string? recoverMonitor = null;
        bool resume = parse.GetValue(Resume);
        if (resume)
        {
            // A resume only reconnects: what precopy and the switchover take does not apply to it.
            if (parse.GetValue(Postcopy) || parse.GetValue(PostcopyAfter) is not null || parse.GetValue(NoMinorFaults) || parse.GetValue(NoPreempt) || xbzrle || parse.GetValue(NoSparsePages) || parameters.Count > 0)
            {
                problems.Add("--resume takes only --monitor, --to and --destination-monitor");
            }

            recoverMonitor = parse.GetValue(DestinationMonitor) is { } recoverPath && recoverPath.StartsWith("unix:", StringComparison.Ordinal) ? recoverPath["unix:".Length..] : parse.GetValue(DestinationMonitor);
        }
        else if (parse.GetValue(Postcopy))
        {
            double after = 0.2;
            if (parse.GetValue(PostcopyAfter) is { } afterText
                && !(double.TryParse(afterText, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out after) && after >= 0 && after <= 3600))
            {
                problems.Add($"--postcopy-after: '{afterText}' is not a number of seconds from 0 to 3600");
            }

            string? destination = parse.GetValue(DestinationMonitor);
            postcopy = new PostcopyPlan(
                TimeSpan.FromSeconds(after),
                destination?.StartsWith("unix:", StringComparison.Ordinal) == true ? destination["unix:".Length..] : destination,
                MinorFaults: !parse.GetValue(NoMinorFaults),
                Preempt: !parse.GetValue(NoPreempt));
        }
        else if (parse.GetValue(PostcopyAfter) is not null || parse.GetValue(DestinationMonitor) is not null || parse.GetValue(NoMinorFaults) || parse.GetValue(NoPreempt))
        {
            problems.Add("--postcopy-after, --no-minor-faults, --no-preempt and --destination-monitor go with --postcopy");
        }

        if (problems.Count > 0)
        {
            problems.ForEach(CliErrors.Print);
            return StatusUsageOrConnection;
        }

        using var interrupt = new Interrupt();
        // Only the source's xbzrle and sparse-pages matter: every destination takes deltas and sparse pages.
        var sourceCapabilities = new JsonArray();
        if (xbzrle)
        {
            sourceCapabilities.Add(new JsonObject { ["capability"] = "xbzrle", ["state"] = true });
        }

        if (parse.GetValue(NoSparsePages))
        {
            sourceCapabilities.Add(new JsonObject { ["capability"] = "sparse-pages", ["state"] = false });
        }

        return RunAsync(path, uri, parameters, postcopy, sourceCapabilities, interrupt, resume, recoverMonitor).GetAwaiter().GetResult();
    }

    /// <summary>--resume with --destination-monitor: migrate-recover there, so the destination listens on the URI again.</summary>
    private static async Task<string?> RecoverAsync(string path, string uri)
    {
        try
        {
            using var connectTimeout = new CancellationTokenSource(CommandTimeout);
            await using QmpClient client = await QmpClient.ConnectAsync(path, connectTimeout.Token);
            QmpResponse reply = await ExecuteAsync(client, "migrate-recover", new JsonObject { ["uri"] = uri });
            return reply.IsError ? $"migrate-recover on {path}: {reply.ErrorDescription}" : null;
        }
        catch (Exception e) when (e is QmpConnectionException or OperationCanceledException or TimeoutException)
        {
            return $"monitor {path}: {e.Message}";
        }
    }

    /// <summary>
    /// --postcopy: when to switch, where the destination's monitor is (to enable postcopy-ram there), minor faults or
    /// not, a preempt channel or not.
    /// </summary>
    private sealed record PostcopyPlan(TimeSpan After, string? DestinationMonitor, bool MinorFaults, bool Preempt);

    /// <summary>Enables postcopy-ram, and sets postcopy-minor-faults and postcopy-preempt, through one monitor.</summary>
    private static async Task<string?> EnablePostcopyAsync(string path, bool minorFaults, bool preempt)
    {
        try
        {
            using var connectTimeout = new CancellationTokenSource(CommandTimeout);
            await using QmpClient client = await QmpClient.ConnectAsync(path, connectTimeout.Token);
            QmpResponse reply = await ExecuteAsync(client, "migrate-set-capabilities", new JsonObject
            {
                ["capabilities"] = new JsonArray(
                    new JsonObject { ["capability"] = "postcopy-ram", ["state"] = true },
                    new JsonObject { ["capability"] = "postcopy-minor-faults", ["state"] = minorFaults },
                    new JsonObject { ["capability"] = "postcopy-preempt", ["state"] = preempt }),
            });
            return reply.IsError ? $"migrate-set-capabilities on {path}: {reply.ErrorDescription}" : null;
        }
        catch (Exception e) when (e is QmpConnectionException or OperationCanceledException or TimeoutException)
        {
            return $"monitor {path}: {e.Message}";
        }
    }

    private static async Task<int> RunAsync(string path, string uri, JsonObject parameters, PostcopyPlan? postcopy, JsonArray sourceCapabilities, Interrupt interrupt, bool resume, string? recoverMonitor)
    {
        if (recoverMonitor is not null && await RecoverAsync(recoverMonitor, uri) is { } recoverError)
        {
            CliErrors.Print(recoverError);
            return StatusFailed;
        }

        if (postcopy?.DestinationMonitor is { } destinationMonitor && await EnablePostcopyAsync(destinationMonitor, postcopy.MinorFaults, postcopy.Preempt) is { } destinationError)
        {
            CliErrors.Print(destinationError);
            return StatusUsageOrConnection;
        }

        QmpClient client;
        try
        {
            using var connectTimeout = new CancellationTokenSource(CommandTimeout);
            client = await QmpClient.ConnectAsync(path, connectTimeout.Token);
        }
        catch (Exception e) when (e is QmpConnectionException or OperationCanceledException)
        {
            CliErrors.Print(e is QmpConnectionException ? e.Message : $"monitor socket {path} did not answer within {CommandTimeout.TotalSeconds:0} s");
            return StatusUsageOrConnection;
        }

        await using (client)
        {
            try
            {
                if (postcopy is not null && await EnablePostcopyAsync(path, postcopy.MinorFaults, postcopy.Preempt) is { } sourceError)
                {
                    CliErrors.Print(sourceError);
                    return StatusUsageOrConnection;
                }

                if (sourceCapabilities.Count > 0)
                {
                    QmpResponse enabled = await ExecuteAsync(client, "migrate-set-capabilities", new JsonObject
                    {
                        ["capabilities"] = sourceCapabilities,
                    });
                    if (enabled.IsError)
                    {
                        CliErrors.Print($"migrate-set-capabilities on {path}: {enabled.ErrorDescription}");
                        return StatusUsageOrConnection;
                    }
                }

                return await MigrateAsync(client, uri, parameters, postcopy, interrupt, resume);
            }
            catch (Exception e) when (e is QmpConnectionException or TimeoutException)
            {
                CliErrors.Print(e is TimeoutException
                    ? $"the monitor did not answer within {CommandTimeout.TotalSeconds:0} s"
                    : $"{e.Message} (did the source VMM exit?)");
                return StatusUsageOrConnection;
            }
        }
    }

    private static async Task<int> MigrateAsync(QmpClient client, string uri, JsonObject parameters, PostcopyPlan? postcopy, Interrupt interrupt, bool resume)
    {
        // MIGRATION events wake the poll early, so the end is seen without waiting for the next tick. Their statuses
        // are kept too: a phase shorter than a poll (a postcopy that completes within 100 ms) is still reported.
        var wake = new SemaphoreSlim(0);
        var announced = new System.Collections.Concurrent.ConcurrentQueue<string>();
        client.EventReceived += message =>
        {
            if (message.TryGetProperty("event", out JsonElement name) && name.GetString() is "MIGRATION")
            {
                if (message.TryGetProperty("data", out JsonElement data) && data.ValueKind == JsonValueKind.Object
                    && data.TryGetProperty("status", out JsonElement status) && status.GetString() is { } text)
                {
                    announced.Enqueue(text);
                }

                wake.Release();
            }
        };
        interrupt.Raised += () => wake.Release();

        if (parameters.Count > 0)
        {
            QmpResponse set = await ExecuteAsync(client, "migrate-set-parameters", parameters);
            if (set.IsError)
            {
                CliErrors.Print($"migrate-set-parameters: {set.ErrorDescription}");
                return StatusUsageOrConnection;
            }
        }

        if (interrupt.Count > 0)
        {
            CliErrors.Print("interrupted before the migration started");
            return StatusFailed;
        }

        var migrate = new JsonObject { ["uri"] = uri };
        if (resume)
        {
            migrate["resume"] = true;
        }

        QmpResponse started = await ExecuteAsync(client, "migrate", migrate);
        if (started.IsError)
        {
            CliErrors.Print($"migration failed: {started.ErrorDescription}");
            return StatusFailed;
        }

        var clock = Stopwatch.StartNew();
        var progress = Progress.Create();
        bool cancelSent = false;
        bool postcopySent = false;
        Snapshot last = await progress.RunAsync(async report =>
        {
            while (true)
            {
                QmpResponse reply = await ExecuteAsync(client, "query-migrate", null);
                Snapshot now = reply.IsError || reply.Return is not { ValueKind: JsonValueKind.Object } info
                    ? throw new QmpConnectionException($"query-migrate failed: {reply.ErrorDescription}")
                    : Snapshot.From(info, clock.Elapsed);

                // Statuses announced since the last poll that the poll itself did not see, in order, with this
                // poll's counters; the status the poll returned comes last.
                while (announced.TryDequeue(out string? passed))
                {
                    if (passed != now.Status)
                    {
                        report(now with { Status = passed });
                    }
                }

                report(now);
                if (now.IsFinished)
                {
                    return now;
                }

                if (postcopy is not null && !postcopySent && now.Status == "active" && clock.Elapsed >= postcopy.After)
                {
                    postcopySent = true;
                    QmpResponse switched = await ExecuteAsync(client, "migrate-start-postcopy", null);
                    if (switched.IsError)
                    {
                        CliErrors.Print($"migrate-start-postcopy: {switched.ErrorDescription}");
                    }
                }

                if (interrupt.Count > 0 && !cancelSent)
                {
                    cancelSent = true;
                    Console.Error.WriteLine("vmm: cancelling the migration (Ctrl-C again to stop waiting)");
                    QmpResponse cancel = await ExecuteAsync(client, "migrate_cancel", null);
                    if (cancel.IsError)
                    {
                        CliErrors.Print($"migrate_cancel: {cancel.ErrorDescription}");
                    }
                }

                await wake.WaitAsync(PollInterval);
            }
        });

        progress.Summary(last);
        switch (last.Status)
        {
            case "completed":
                return StatusCompleted;
            case "cancelled":
                CliErrors.Print("migration cancelled; the guest keeps running on the source");
                return StatusFailed;
            default:
                CliErrors.Print($"migration failed: {last.Error ?? "no reason given"}");
                return StatusFailed;
        }
    }

    private static async Task<QmpResponse> ExecuteAsync(QmpClient client, string command, JsonObject? arguments)
    {
        using var timeout = new CancellationTokenSource(CommandTimeout);
        try
        {
            return await client.ExecuteAsync(command, arguments, timeout.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            throw new TimeoutException($"{command} got no answer");
        }
    }

    /// <summary>One query-migrate answer, in the units the display shows.</summary>
    internal sealed record Snapshot(
        string Status,
        TimeSpan Elapsed,
        long? TotalTimeMs,
        long? SetupTimeMs,
        long? DowntimeMs,
        long? DowntimeUs,
        long? ExpectedDowntimeMs,
        string? Error,
        ulong Transferred,
        ulong Remaining,
        ulong Total,
        ulong NormalPages,
        ulong ZeroPages,
        ulong DirtyPagesRate,
        ulong DirtySyncCount,
        long Passes,
        double Mbps,
        XbzrleFigures? Xbzrle = null)
    {
        public bool IsFinished => Status is "completed" or "failed" or "cancelled" or "postcopy-paused";

        public static Snapshot From(JsonElement info, TimeSpan elapsed)
        {
            JsonElement ram = info.TryGetProperty("ram", out JsonElement r) && r.ValueKind == JsonValueKind.Object ? r : default;
            ulong U(JsonElement parent, string name) =>
                parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out JsonElement v) && v.TryGetUInt64(out ulong n) ? n : 0;
            long? L(string name) =>
                info.TryGetProperty(name, out JsonElement v) && v.TryGetInt64(out long n) ? n : null;
            ulong syncs = U(ram, "dirty-sync-count");
            return new Snapshot(
                Status: info.TryGetProperty("status", out JsonElement s) ? s.GetString() ?? "?" : "none",
                Elapsed: elapsed,
                TotalTimeMs: L("total-time"),
                SetupTimeMs: L("setup-time"),
                DowntimeMs: L("downtime"),
                DowntimeUs: L("downtime-us"),
                ExpectedDowntimeMs: L("expected-downtime"),
                Error: info.TryGetProperty("error-desc", out JsonElement e) ? e.GetString() : null,
                Transferred: U(ram, "transferred"),
                Remaining: U(ram, "remaining"),
                Total: U(ram, "total"),
                NormalPages: U(ram, "normal"),
                ZeroPages: U(ram, "duplicate"),
                DirtyPagesRate: U(ram, "dirty-pages-rate"),
                DirtySyncCount: syncs,
                Passes: ram.ValueKind == JsonValueKind.Object && ram.TryGetProperty("passes", out JsonElement p) && p.TryGetInt64(out long n) ? n : (long)syncs,
                Mbps: ram.ValueKind == JsonValueKind.Object && ram.TryGetProperty("mbps", out JsonElement m) && m.TryGetDouble(out double d) ? d : 0,
                Xbzrle: info.TryGetProperty("xbzrle-cache", out JsonElement x) && x.ValueKind == JsonValueKind.Object
                    ? new XbzrleFigures(U(x, "pages"), U(x, "bytes"), U(x, "cache-miss"), U(x, "overflow"))
                    : null);
        }
    }

    /// <summary>query-migrate's xbzrle-cache object, when the source uses xbzrle.</summary>
    internal sealed record XbzrleFigures(ulong Pages, ulong Bytes, ulong CacheMisses, ulong Overflows);

    /// <summary>How progress and the summary reach stdout: a live Spectre display on a terminal, plain lines otherwise.</summary>
    private abstract class Progress
    {
        public static Progress Create() => Console.IsOutputRedirected ? new PlainProgress() : new LiveProgress();

        /// <summary>Runs the poll loop, which calls the given reporter with every snapshot.</summary>
        public abstract Task<Snapshot> RunAsync(Func<Action<Snapshot>, Task<Snapshot>> poll);

        public abstract void Summary(Snapshot last);

        protected static Table SummaryTable(Snapshot s, TableBorder border)
        {
            var table = new Table().Border(border).HideHeaders().AddColumn("field").AddColumn(new TableColumn("value").RightAligned());
            void Row(string name, string value) => table.AddRow(Markup.Escape(name), Markup.Escape(value));
            Row("status", s.Status);
            Row("total time", s.TotalTimeMs is { } total ? $"{total} ms" : "-");
            Row("setup time", s.SetupTimeMs is { } setup ? $"{setup} ms" : "-");
            Row("downtime", s.DowntimeUs is { } us ? $"{us} us ({us / 1000.0:F1} ms)" : s.DowntimeMs is { } ms ? $"{ms} ms" : "-");
            Row("transferred", $"{s.Transferred} bytes ({Mib(s.Transferred)})");
            Row("pages normal / zero", $"{s.NormalPages} / {s.ZeroPages}");
            if (s.Xbzrle is { } x)
            {
                Row("xbzrle delta pages / bytes", $"{x.Pages} / {x.Bytes}");
                Row("xbzrle cache misses / overflows", $"{x.CacheMisses} / {x.Overflows}");
            }

            Row("passes", s.Passes.ToString(CultureInfo.InvariantCulture));
            Row("throughput", $"{s.Mbps:F1} Mbps (last pass), {AverageMbps(s):F1} Mbps (average)");
            return table;
        }

        protected static string Mib(ulong bytes) => $"{bytes / 1048576.0:F1} MiB";

        protected static double AverageMbps(Snapshot s) =>
            s.TotalTimeMs is > 0 and { } ms ? s.Transferred * 8 / (ms / 1000.0) / 1e6 : 0;
    }

    /// <summary>No terminal: one line per status or pass change, and at least one per second while it runs.</summary>
    private sealed class PlainProgress : Progress
    {
        private readonly TextWriter output = Console.Out;

        public override async Task<Snapshot> RunAsync(Func<Action<Snapshot>, Task<Snapshot>> poll)
        {
            Snapshot? shown = null;
            TimeSpan shownAt = TimeSpan.Zero;
            return await poll(now =>
            {
                if (shown is null || now.Status != shown.Status || now.Passes != shown.Passes || now.Elapsed - shownAt >= PlainLineInterval)
                {
                    output.WriteLine(Line(now));
                    output.Flush();
                    shown = now;
                    shownAt = now.Elapsed;
                }
            });
        }

        public override void Summary(Snapshot last)
        {
            IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Ansi = AnsiSupport.No,
                ColorSystem = ColorSystemSupport.NoColors,
                Interactive = InteractionSupport.No,
                Out = new AnsiConsoleOutput(output),
            });
            console.Write(SummaryTable(last, TableBorder.Ascii));
            output.Flush();
        }

        private static string Line(Snapshot s) => string.Create(
            CultureInfo.InvariantCulture,
            $"{s.Elapsed.TotalSeconds,6:F1} s  {s.Status,-15} pass {s.Passes,3}  transferred {Mib(s.Transferred),11}  remaining {Mib(s.Remaining),11}  dirty {s.DirtyPagesRate,8} pages/s  {s.Mbps,8:F1} Mbps");
    }

    /// <summary>A terminal: a table redrawn in place on every poll.</summary>
    private sealed class LiveProgress : Progress
    {
        private readonly IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });

        public override async Task<Snapshot> RunAsync(Func<Action<Snapshot>, Task<Snapshot>> poll)
        {
            Snapshot? result = null;
            await console.Live(new Text("migrate: connecting…"))
                .AutoClear(true)
                .Overflow(VerticalOverflow.Ellipsis)
                .StartAsync(async context =>
                {
                    result = await poll(now =>
                    {
                        context.UpdateTarget(Render(now));
                        context.Refresh();
                    });
                });
            return result!;
        }

        public override void Summary(Snapshot last) => console.Write(SummaryTable(last, TableBorder.Rounded));

        private static IRenderable Render(Snapshot s)
        {
            string color = s.Status switch { "completed" => "green", "failed" or "cancelled" => "red", "cancelling" => "yellow", _ => "blue" };
            var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn(new GridColumn().NoWrap());
            void Row(string name, string markup) => grid.AddRow(new Markup($"[grey]{Markup.Escape(name)}[/]"), new Markup(markup));
            Row("status", $"[bold {color}]{Markup.Escape(s.Status)}[/]");
            Row("pass", s.Passes.ToString(CultureInfo.InvariantCulture));
            Row("transferred", Markup.Escape(Mib(s.Transferred)));
            Row("remaining", Markup.Escape(Mib(s.Remaining)));
            Row("dirty rate", $"{s.DirtyPagesRate} pages/s");
            Row("throughput", Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"{s.Mbps:F1} Mbps")));
            Row("expected downtime", s.ExpectedDowntimeMs is { } expected ? $"{expected} ms" : "-");
            Row("elapsed", Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"{s.Elapsed.TotalSeconds:F1} s")));
            // Pages sent (with data or as zero) against the RAM size: the first pass's progress.
            double firstPass = s.Total == 0 ? 0 : Math.Min(100, Math.Round(100.0 * (s.NormalPages + s.ZeroPages) * 4096 / s.Total, 1));
            var bar = new BarChart().Width(50).WithMaxValue(100).AddItem("first pass %", firstPass, Color.Blue);
            return new Panel(new Rows(grid, bar)).Header("migrate").Border(BoxBorder.Rounded);
        }
    }

    /// <summary>SIGINT / SIGTERM: the first asks for migrate_cancel; a second one is left to end the process.</summary>
    private sealed class Interrupt : IDisposable
    {
        private readonly PosixSignalRegistration sigint;
        private readonly PosixSignalRegistration sigterm;
        private int count;

        public Interrupt()
        {
            sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle);
            sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle);
        }

        public event Action? Raised;

        public int Count => Volatile.Read(ref count);

        private void Handle(PosixSignalContext context)
        {
            if (Interlocked.Increment(ref count) == 1)
            {
                context.Cancel = true;
                Raised?.Invoke();
            }
        }

        public void Dispose()
        {
            sigint.Dispose();
            sigterm.Dispose();
        }
    }
}
