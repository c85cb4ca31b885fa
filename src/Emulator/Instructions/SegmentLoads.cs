using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>TODO: not written yet.</summary>
internal static unsafe class SegmentLoads
{
    public static void Register(BinderTable table)
    {
    }

    /// <summary>MOV to or from a segment register (called by <see cref="Moves"/>, which owns MOV).</summary>
    public static bool BindMov(in Instruction i, ref DecodedInstruction d, BindContext c) => false;
}
