using System.Reflection;
using System.Text.Json.Nodes;

namespace Vmm.Qmp;

/// <summary>vmm's version in QEMU's VersionInfo shape, for the greeting and query-version.</summary>
public static class QmpVersion
{
    public const string Package = "vmm";

    public static Version Current { get; } = typeof(QmpVersion).Assembly.GetName().Version ?? new Version(0, 0, 0);

    /// <summary>{"qemu": {"micro": …, "minor": …, "major": …}, "package": "vmm"}: QEMU's field order, vmm's numbers.</summary>
    public static JsonObject ToQmp() => new()
    {
        ["qemu"] = new JsonObject
        {
            ["micro"] = Math.Max(Current.Build, 0),
            ["minor"] = Current.Minor,
            ["major"] = Current.Major,
        },
        ["package"] = Package,
    };
}
