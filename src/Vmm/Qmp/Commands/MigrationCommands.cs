using System.Text.Json;
using System.Text.Json.Nodes;
using Vmm.Machine;
using Vmm.Migration;

namespace Vmm.Qmp.Commands;

/// <summary>
/// QEMU's migration commands with QEMU's names and shapes: migrate, migrate_cancel, migrate-set-capabilities,
/// query-migrate-capabilities, migrate-set-parameters, query-migrate-parameters, query-migrate.
/// </summary>
public static class MigrationCommands
{
    private static readonly string[] CapabilityNames = ["xbzrle", "postcopy-ram", "postcopy-minor-faults", "postcopy-preempt", "postcopy-shared-memory", "sparse-pages", "events"];

    public static void Register(QmpCommandRegistry registry)
    {
        registry.Add(new QmpCommand(
            "migrate",
            [QmpParameter.Required("uri", QmpParameterType.String), QmpParameter.Maybe("detach", QmpParameterType.Boolean), QmpParameter.Maybe("resume", QmpParameterType.Boolean)],
            (context, arguments) =>
            {
                // A resume reconnects a postcopy paused here; the guest (stopped here since the switchover) is not migrated anew.
                if (arguments.Has("resume") && arguments.GetBoolean("resume"))
                {
                    context.Machine.Migration.Migrate(arguments.GetString("uri"), resume: true);
                    return null;
                }

                RunState state = context.Machine.RunState;
                if (state is RunState.InMigrate or RunState.Prelaunch or RunState.Shutdown or RunState.PostMigrate)
                {
                    throw QmpException.Generic($"cannot migrate a guest that is {state.ToQmp()}");
                }

                context.Machine.Migration.Migrate(arguments.GetString("uri"));
                return null;
            }));

        registry.Add(new QmpCommand(
            "migrate-recover",
            [QmpParameter.Required("uri", QmpParameterType.String)],
            (context, arguments) =>
            {
                context.Machine.Migration.Recover(arguments.GetString("uri"));
                return null;
            }));

        registry.Add(new QmpCommand("migrate-start-postcopy", (context, _) =>
        {
            context.Machine.Migration.StartPostcopy();
            return null;
        }));

        registry.Add(new QmpCommand("migrate_cancel", (context, _) =>
        {
            context.Machine.Migration.Cancel();
            return null;
        }));

        registry.Add(new QmpCommand(
            "migrate-set-capabilities",
            [QmpParameter.Required("capabilities", QmpParameterType.ObjectList)],
            (context, arguments) =>
            {
                MigrationCapabilities capabilities = context.Machine.Migration.Capabilities;
                foreach (JsonElement entry in arguments.GetObjectList("capabilities"))
                {
                    string name = entry.TryGetProperty("capability", out JsonElement n) && n.ValueKind == JsonValueKind.String
                        ? n.GetString()!
                        : throw QmpException.Generic("Parameter 'capability' is missing");
                    bool on = entry.TryGetProperty("state", out JsonElement s) && s.ValueKind is JsonValueKind.True or JsonValueKind.False
                        ? s.GetBoolean()
                        : throw QmpException.Generic("Parameter 'state' is missing");
                    capabilities = name switch
                    {
                        "xbzrle" => capabilities with { Xbzrle = on },
                        "postcopy-ram" => capabilities with { PostcopyRam = on },
                        "postcopy-minor-faults" => capabilities with { PostcopyMinorFaults = on },
                        "postcopy-preempt" => capabilities with { PostcopyPreempt = on },
                        "postcopy-shared-memory" => capabilities with { PostcopySharedMemory = on },
                        "sparse-pages" => capabilities with { SparsePages = on },
                        "events" => capabilities with { Events = on },
                        _ => throw QmpException.Generic($"Parameter 'capability' does not accept value '{name}'"),
                    };
                }

                context.Machine.Migration.SetCapabilities(capabilities);
                return null;
            }));

        registry.Add(new QmpCommand("query-migrate-capabilities", (context, _) =>
        {
            MigrationCapabilities capabilities = context.Machine.Migration.Capabilities;
            return new JsonArray(
                [.. CapabilityNames.Select(name => (JsonNode)new JsonObject
                {
                    ["capability"] = name,
                    ["state"] = name switch
                    {
                        "xbzrle" => capabilities.Xbzrle,
                        "postcopy-ram" => capabilities.PostcopyRam,
                        "postcopy-minor-faults" => capabilities.PostcopyMinorFaults,
                        "postcopy-preempt" => capabilities.PostcopyPreempt,
                        "postcopy-shared-memory" => capabilities.PostcopySharedMemory,
                        "sparse-pages" => capabilities.SparsePages,
                        _ => capabilities.Events,
                    },
                })]);
        }));

        registry.Add(new QmpCommand(
            "migrate-set-parameters",
            [
                QmpParameter.Maybe("downtime-limit", QmpParameterType.Unsigned),
                QmpParameter.Maybe("max-bandwidth", QmpParameterType.Unsigned),
                QmpParameter.Maybe("max-postcopy-bandwidth", QmpParameterType.Unsigned),
                QmpParameter.Maybe("xbzrle-cache-size", QmpParameterType.Unsigned),
                QmpParameter.Maybe("tls-creds", QmpParameterType.String),
                QmpParameter.Maybe("tls-hostname", QmpParameterType.String),
                QmpParameter.Maybe("tls-authz", QmpParameterType.String),
            ],
            (context, arguments) =>
            {
                MigrationParameters parameters = context.Machine.Migration.Parameters;
                if (arguments.Has("downtime-limit"))
                {
                    ulong limit = arguments.GetUnsigned("downtime-limit");
                    if (limit > 2_000_000)
                    {
                        throw QmpException.Generic("Parameter 'downtime-limit' expects an integer in the range of 0 to 2000000 milliseconds");
                    }

                    parameters = parameters with { DowntimeLimitMs = limit };
                }

                if (arguments.Has("max-bandwidth"))
                {
                    parameters = parameters with { MaxBandwidth = arguments.GetUnsigned("max-bandwidth") };
                }

                if (arguments.Has("max-postcopy-bandwidth"))
                {
                    parameters = parameters with { MaxPostcopyBandwidth = arguments.GetUnsigned("max-postcopy-bandwidth") };
                }

                if (arguments.Has("xbzrle-cache-size"))
                {
                    ulong size = arguments.GetUnsigned("xbzrle-cache-size");
                    if (size is < 4096 or > 1ul << 30)
                    {
                        throw QmpException.Generic("Parameter 'xbzrle-cache-size' expects a size from 4096 bytes to 1 GiB");
                    }

                    parameters = parameters with { XbzrleCacheSize = size };
                }

                parameters = parameters with { Tls = TlsParameters(parameters.Tls, arguments) };

                context.Machine.Migration.SetParameters(parameters);
                return null;
            }));

        registry.Add(new QmpCommand("query-migrate-parameters", (context, _) =>
        {
            MigrationParameters parameters = context.Machine.Migration.Parameters;
            return new JsonObject
            {
                ["downtime-limit"] = parameters.DowntimeLimitMs,
                ["max-bandwidth"] = parameters.MaxBandwidth,
                ["max-postcopy-bandwidth"] = parameters.MaxPostcopyBandwidth ?? 0,
                ["xbzrle-cache-size"] = parameters.XbzrleCacheSize,
                ["tls-creds"] = parameters.Tls?.CredsDirectory ?? string.Empty,
                ["tls-hostname"] = parameters.Tls?.Hostname ?? string.Empty,
                ["tls-authz"] = string.Join(",", parameters.Tls?.Authz ?? []),
            };
        }));

        registry.Add(new QmpCommand("query-migrate", (context, _) => Describe(context.Machine.Migration.Stats)));
    }

    /// <summary>QEMU's MigrationInfo: {} before any migration; times only once known; ram while it moves RAM.</summary>
    public static JsonObject Describe(MigrationStats? stats)
    {
        if (stats is null)
        {
            return [];
        }

        var info = new JsonObject { ["status"] = stats.Status.ToQmp() };
        if (stats.Status is MigrationStatus.Setup)
        {
            return info;
        }

        info["total-time"] = stats.TotalTimeMs;
        info["setup-time"] = stats.SetupTimeMs;
        if (stats.Status == MigrationStatus.Completed)
        {
            info["downtime"] = stats.DowntimeMs;
            info["downtime-us"] = stats.DowntimeUs;
        }
        else if (!stats.Status.IsFinished())
        {
            info["expected-downtime"] = stats.ExpectedDowntimeMs;
        }

        if (stats.ErrorDescription is { } error)
        {
            info["error-desc"] = error;
        }

        info["ram"] = new JsonObject
        {
            ["transferred"] = stats.TransferredBytes,
            ["remaining"] = stats.RemainingBytes,
            ["total"] = stats.TotalBytes,
            ["duplicate"] = stats.DuplicatePages,
            ["normal"] = stats.NormalPages,
            ["normal-bytes"] = stats.NormalBytes,
            ["dirty-pages-rate"] = stats.DirtyPagesRate,
            ["dirty-sync-count"] = stats.DirtySyncCount,
            ["mbps"] = Math.Round(stats.Mbps, 3),
            ["pages-per-second"] = stats.PagesPerSecond,
            ["page-size"] = stats.PageSize,
            ["passes"] = stats.Passes,
            ["postcopy-requests"] = stats.PostcopyRequests,
            ["postcopy-preempt-pages"] = stats.PostcopyPreemptPages,
            ["postcopy-shared-memory-pages"] = stats.PostcopySharedPages,
            ["sparse-pages"] = stats.SparsePages,
            ["free-page-hint-skipped"] = stats.FreePageHintSkippedPages,
        };

        if (stats.XbzrleCacheSize > 0)
        {
            // QEMU's object (its two per-pass rates left out), present when the source uses xbzrle.
            info["xbzrle-cache"] = new JsonObject
            {
                ["cache-size"] = stats.XbzrleCacheSize,
                ["bytes"] = stats.XbzrleBytes,
                ["pages"] = stats.XbzrlePages,
                ["cache-miss"] = stats.XbzrleCacheMisses,
                ["overflow"] = stats.XbzrleOverflows,
                ["unchanged"] = stats.XbzrleUnchanged,
            };
        }

        if (stats.FaultCount > 0 || stats.PostcopyBlocktimeMs > 0)
        {
            // Destination: QEMU's block-time fields (ms), and the fault latency distribution QEMU does not have.
            info["postcopy-blocktime"] = (ulong)Math.Round(stats.PostcopyBlocktimeMs);
            info["postcopy-vcpu-blocktime"] = new JsonArray((ulong)Math.Round(stats.PostcopyBlocktimeMs));
            info["postcopy-fault-latency"] = new JsonObject
            {
                ["faults"] = stats.FaultCount,
                ["local"] = stats.PostcopyLocalFaults,
                ["local-continue"] = stats.PostcopyContinuePages,
                ["fetched"] = stats.PostcopyFetchedPages,
                ["stale"] = stats.PostcopyStalePages,
                ["minor-blocks"] = stats.PostcopyMinorBlocks,
                ["p50-us"] = Math.Round(stats.FaultLatencyP50Us, 1),
                ["p99-us"] = Math.Round(stats.FaultLatencyP99Us, 1),
                ["max-us"] = Math.Round(stats.FaultLatencyMaxUs, 1),
            };
        }

        return info;
    }

    /// <summary>
    /// tls-creds (a directory; "" turns TLS off), tls-hostname, tls-authz (comma-separated common names) as QEMU takes
    /// them: each given one changes, the others stay. The credentials are read when a connection is made.
    /// </summary>
    private static MigrationTls? TlsParameters(MigrationTls? current, QmpArguments arguments)
    {
        string? creds = arguments.Has("tls-creds") ? arguments.GetString("tls-creds") : current?.CredsDirectory;
        if (string.IsNullOrEmpty(creds))
        {
            return null;
        }

        string? hostname = arguments.Has("tls-hostname") ? arguments.GetString("tls-hostname") : current?.Hostname;
        IReadOnlyList<string> authz = arguments.Has("tls-authz")
            ? arguments.GetString("tls-authz").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : current?.Authz ?? [];
        return new MigrationTls(creds, string.IsNullOrEmpty(hostname) ? null : hostname, authz);
    }
}
