using System.Runtime.InteropServices;
using Iced.Intel;
using Vmm.Emulator.Memory;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Decoding;

/// <summary>
/// Decodes a block: instructions from an entry point, each bound to its handler by <see cref="InstructionBinder"/>,
/// up to one that always transfers control, the end of the entry's page, or <see cref="Block.MaxInstructions"/>. The
/// bytes are read from guest RAM (mapping pages as needed) and the block is registered with the code cache, which
/// write-protects its pages.
/// </summary>
internal sealed class BlockDecoder
{
    private readonly Cpu cpu;
    private readonly GuestCodeReader reader;
    private readonly Decoder decoder16;
    private readonly Decoder decoder32;
    private readonly List<DecodedInstruction> scratch = new(Block.MaxInstructions);

    public BlockDecoder(Cpu cpu)
    {
        this.cpu = cpu;
        reader = new GuestCodeReader(cpu.Memory);
        decoder16 = Decoder.Create(16, reader);
        decoder32 = Decoder.Create(32, reader);
    }

    /// <summary>Decodes the block at <paramref name="linear"/> (CS base + <paramref name="eip"/>), or null when that is not RAM.</summary>
    public Block? Decode(uint linear, uint csBase, uint eip, bool code32)
    {
        Decoder decoder = code32 ? decoder32 : decoder16;
        uint ipMask = code32 ? 0xFFFF_FFFFu : 0xFFFFu;
        uint page = linear >> GuestPhysicalMemory.PageShift;
        scratch.Clear();
        uint ip = eip;
        uint end = linear;
        while (scratch.Count < Block.MaxInstructions)
        {
            uint at = csBase + ip;
            if (scratch.Count > 0 && at >> GuestPhysicalMemory.PageShift != page)
            {
                break;
            }

            reader.Start(at);
            decoder.IP = ip;
            decoder.Decode(out Instruction instruction);
            if (reader.FetchFailed)
            {
                if (scratch.Count == 0)
                {
                    return null;
                }

                break;
            }

            DecodedInstruction d = InstructionBinder.Bind(in instruction, reader.Bytes, code32);
            d.NextIp &= ipMask;
            scratch.Add(d);
            end = at + (uint)instruction.Length;
            ip = (ip + (uint)instruction.Length) & ipMask;
            if (EndsBlock(in instruction))
            {
                break;
            }
        }

        FlagLiveness.EliminateDeadFlags(CollectionsMarshal.AsSpan(scratch));
        var block = new Block(linear, csBase, code32, [.. scratch], end);
        cpu.Memory.Code.Add(block);
        return block;
    }

    /// <summary>Instructions after which the next one is never the fall-through (or cannot be known at decode time).</summary>
    private static bool EndsBlock(in Instruction instruction) => instruction.FlowControl switch
    {
        FlowControl.Next or FlowControl.ConditionalBranch => instruction.Code == Code.INVALID,
        _ => true,
    };
}
