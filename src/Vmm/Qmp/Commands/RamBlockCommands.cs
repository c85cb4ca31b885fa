using System.Text.Json.Nodes;
using Vmm.Ram;

namespace Vmm.Qmp.Commands;

/// <summary>
/// vmm's own RAM block commands (QEMU has no QMP equivalents): query-ram-blocks lists the blocks; ram-resize,
/// ram-discard and ram-remap change one, through the machine so memslots and dirty logging follow.
/// </summary>
public static class RamBlockCommands
{
    public static void Register(QmpCommandRegistry registry)
    {
        registry.Add(new QmpCommand("query-ram-blocks", (context, _) =>
            new JsonArray([.. context.Machine.Ram.Blocks.Select(b => (JsonNode)Describe(b))])));

        registry.Add(new QmpCommand(
            "ram-resize",
            [QmpParameter.Required("name", QmpParameterType.String), QmpParameter.Required("size", QmpParameterType.Unsigned)],
            (context, arguments) =>
            {
                context.Machine.ResizeRamBlock(arguments.GetString("name"), arguments.GetUnsigned("size"));
                return null;
            }));

        registry.Add(new QmpCommand("ram-discard", RangeParameters, (context, arguments) =>
        {
            context.Machine.DiscardRam(arguments.GetString("name"), arguments.GetUnsigned("offset"), arguments.GetUnsigned("length"));
            return null;
        }));

        registry.Add(new QmpCommand("ram-remap", RangeParameters, (context, arguments) =>
        {
            context.Machine.RemapRam(arguments.GetString("name"), arguments.GetUnsigned("offset"), arguments.GetUnsigned("length"));
            return null;
        }));
    }

    /// <summary>{name, offset, length}: a byte range of one block, offsets from the block's start.</summary>
    private static readonly QmpParameter[] RangeParameters =
    [
        QmpParameter.Required("name", QmpParameterType.String),
        QmpParameter.Required("offset", QmpParameterType.Unsigned),
        QmpParameter.Required("length", QmpParameterType.Unsigned),
    ];

    /// <summary>{"name", "base", "used", "max", "page-size", "backend", "resizable"}; sizes and addresses in bytes.</summary>
    public static JsonObject Describe(RamBlock block) => new()
    {
        ["name"] = block.Name,
        ["base"] = block.GuestBase,
        ["used"] = block.UsedLength,
        ["max"] = block.MaxLength,
        ["page-size"] = block.PageSize,
        ["backend"] = block.Backend.ToString().ToLowerInvariant(),
        ["resizable"] = block.IsResizable,
    };
}
