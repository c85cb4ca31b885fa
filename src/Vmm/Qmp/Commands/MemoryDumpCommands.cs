using Vmm.Machine;

namespace Vmm.Qmp.Commands;

/// <summary>pmemsave (guest physical) and memsave (a vCPU's virtual addresses): guest memory into a file.</summary>
public static class MemoryDumpCommands
{
    public static void Register(QmpCommandRegistry registry)
    {
        registry.Add(new QmpCommand(
            "pmemsave",
            [
                QmpParameter.Required("val", QmpParameterType.Unsigned),
                QmpParameter.Required("size", QmpParameterType.Unsigned),
                QmpParameter.Required("filename", QmpParameterType.String),
            ],
            (context, arguments) =>
            {
                ulong address = arguments.GetUnsigned("val");
                ulong size = arguments.GetUnsigned("size");
                Save(context, address, size, address, arguments.GetString("filename"));
                return null;
            }));

        registry.Add(new QmpCommand(
            "memsave",
            [
                QmpParameter.Required("val", QmpParameterType.Unsigned),
                QmpParameter.Required("size", QmpParameterType.Unsigned),
                QmpParameter.Required("filename", QmpParameterType.String),
                QmpParameter.Maybe("cpu-index", QmpParameterType.Integer),
            ],
            (context, arguments) =>
            {
                ulong address = arguments.GetUnsigned("val");
                ulong size = arguments.GetUnsigned("size");
                VcpuRunner cpu = GuestMemoryView.Cpu(context.Machine, arguments.GetOptionalInteger("cpu-index"));
                ulong physical = GuestMemoryView.VirtualToPhysical(context.Machine, cpu, address)
                    ?? throw QmpException.Generic($"Invalid addr 0x{address:x16}/size {size} specified: paging is enabled on CPU {cpu.Vcpu.Id} and vmm translates only unpaged addresses (use pmemsave)");
                Save(context, address, size, physical, arguments.GetString("filename"));
                return null;
            }));
    }

    private static void Save(QmpCommandContext context, ulong address, ulong size, ulong physical, string filename)
    {
        if (GuestMemoryView.RamProblem(context.Machine.Ram, physical, size) is { } problem)
        {
            throw QmpException.Generic($"Invalid addr 0x{address:x16}/size {size} specified: {problem}");
        }

        GuestMemoryView.SaveToFile(context.Machine.Memory, physical, size, filename, context.Aborting);
    }
}
