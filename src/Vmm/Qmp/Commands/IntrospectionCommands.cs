using System.Text.Json.Nodes;
using Vmm.Machine;

namespace Vmm.Qmp.Commands;

/// <summary>query-version, query-commands, query-cpus-fast, query-kvm: what this VMM is and has.</summary>
public static class IntrospectionCommands
{
    public static void Register(QmpCommandRegistry registry)
    {
        registry.Add(new QmpCommand("query-version", (_, _) => QmpVersion.ToQmp()));
        registry.Add(new QmpCommand("query-commands", (context, _) =>
            new JsonArray([.. context.Commands.Commands.Select(c => (JsonNode)new JsonObject { ["name"] = c.Name })])));
        registry.Add(new QmpCommand("query-cpus-fast", (context, _) =>
            new JsonArray([.. context.Machine.Vcpus.Select((vcpu, index) => (JsonNode)Cpu(vcpu, index))])));
        registry.Add(new QmpCommand("query-kvm", (context, _) => Kvm(context.Machine)));
    }

    /// <summary>QEMU's KvmInfo: "enabled" when the guest runs on KVM, "present" when the host has a working KVM.</summary>
    public static JsonObject Kvm(VirtualMachine machine) => new()
    {
        ["enabled"] = machine.Accelerator == Accelerator.AcceleratorKind.Kvm,
        ["present"] = machine.Accelerator == Accelerator.AcceleratorKind.Kvm || machine.Config.KvmPresent,
    };

    /// <summary>QEMU's CpuInfoFast for an x86-64 vCPU (QEMU's qom-path for CPUs created without a socket layout).</summary>
    private static JsonObject Cpu(VcpuRunner vcpu, int index) => new()
    {
        ["cpu-index"] = index,
        ["qom-path"] = $"/machine/unattached/device[{index}]",
        ["thread-id"] = vcpu.ThreadId,
        ["target"] = "x86_64",
    };
}
