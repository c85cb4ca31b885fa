using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Vmm.Bench;

/// <summary>
/// The same migration the vmm benchmarks time, done by two QEMU 7.2 processes on TCG over a Unix socket, with QEMU's
/// default parameters: the figure beside vmm's in one invocation. Figures come from QEMU's own query-migrate
/// (total-time, downtime, postcopy-requests on the source; postcopy-blocktime on the destination).
/// </summary>
internal static class QemuMigration
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <param name="XbzrlePages">With <c>xbzrle</c>: pages QEMU sent as deltas (its xbzrle-cache.pages), and their bytes.</param>
    public sealed record Result(double TotalMs, double DowntimeMs, ulong Requests, double BlocktimeMs, ulong XbzrlePages = 0, ulong XbzrleBytes = 0);

    /// <param name="warmUp">How long the source guest runs (from its first output) before the migration starts.</param>
    /// <param name="postcopyAfter">Precopy time before migrate-start-postcopy; null for a precopy migration.</param>
    /// <param name="xbzrle">Turn QEMU's xbzrle capability on at the source (its default cache, 64 MiB).</param>
    public static Result Run(string image, ulong memoryMiB, TimeSpan warmUp, TimeSpan? postcopyAfter, bool xbzrle = false)
    {
        string dir = Directory.CreateTempSubdirectory("vmm-bench-qemu-").FullName;
        string disk = QemuTcg.BootDisk(image);
        try
        {
            using var destination = new QemuInstance(disk, memoryMiB, Path.Combine(dir, "dst.qmp"), incoming: "defer");
            using var source = new QemuInstance(disk, memoryMiB, Path.Combine(dir, "src.qmp"));
            WaitForOutput(source, 1, "the source guest's first output");
            Thread.Sleep(warmUp);

            if (postcopyAfter is not null)
            {
                source.Qmp.Execute("migrate-set-capabilities", Capabilities("postcopy-ram"));
                destination.Qmp.Execute("migrate-set-capabilities", Capabilities("postcopy-ram", "postcopy-blocktime"));
            }

            if (xbzrle)
            {
                source.Qmp.Execute("migrate-set-capabilities", Capabilities("xbzrle"));
            }

            string uri = $"unix:{Path.Combine(dir, "migration.sock")}";
            destination.Qmp.Execute("migrate-incoming", new { uri });
            source.Qmp.Execute("migrate", new { uri });
            if (postcopyAfter is { } precopy)
            {
                Thread.Sleep(precopy);
                source.Qmp.Execute("migrate-start-postcopy");
            }

            JsonNode sent = WaitForCompletion(source, "source");
            JsonNode received = WaitForCompletion(destination, "destination");

            // The guest goes on over there.
            int printed = destination.Output.Text.Length;
            WaitForOutput(destination, printed + 1, "the guest's output on the destination");

            return new Result(
                (double?)sent["total-time"] ?? double.NaN,
                (double?)sent["downtime"] ?? double.NaN,
                (ulong?)sent["ram"]?["postcopy-requests"] ?? 0,
                (double?)received["postcopy-blocktime"] ?? double.NaN,
                (ulong?)sent["xbzrle-cache"]?["pages"] ?? 0,
                (ulong?)sent["xbzrle-cache"]?["bytes"] ?? 0);
        }
        finally
        {
            File.Delete(disk);
            Directory.Delete(dir, recursive: true);
        }
    }

    private static object Capabilities(params string[] names) =>
        new { capabilities = names.Select(name => new { capability = name, state = true }).ToArray() };

    private static JsonNode WaitForCompletion(QemuInstance qemu, string side)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            JsonNode status = qemu.Qmp.Execute("query-migrate") ?? new JsonObject();
            string? state = (string?)status["status"];
            // QEMU 7.2 sets the state to completed before it computes total-time and downtime (migration_completion,
            // then migration_calculate_complete on the next step): a query in between reads zeros, so a completed
            // source is asked again until its figures are in.
            bool figuresIn = side != "source" || (double?)status["total-time"] > 0;
            if (state == "completed" && figuresIn)
            {
                return status;
            }

            if (state is "failed" or "cancelled" || clock.Elapsed > Bound)
            {
                throw new InvalidOperationException($"QEMU migration on the {side}: {status.ToJsonString()} {qemu.Errors}");
            }

            Thread.Sleep(5);
        }
    }

    private static void WaitForOutput(QemuInstance qemu, int length, string what)
    {
        var clock = Stopwatch.StartNew();
        while (qemu.Output.Text.Length < length)
        {
            if (clock.Elapsed > Bound)
            {
                throw new TimeoutException($"QEMU: no {what} within {Bound.TotalSeconds} s. {qemu.Errors}");
            }

            Thread.Sleep(5);
        }
    }
}
