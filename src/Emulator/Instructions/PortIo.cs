using Iced.Intel;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>TODO: not written yet.</summary>
internal static unsafe class PortIo
{
    public static void Register(BinderTable table)
    {
    }
}
