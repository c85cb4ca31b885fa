using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Vmm.Bench;

/// <summary>Tiny guests assembled in place for the benchmarks.</summary>
public static class BenchGuests
{
    public const ushort ScratchPort = 0x3FF; // COM1 scratch register: a real device on the VMM's bus

    /// <summary>`count` port writes in a tight loop, then cli; hlt.</summary>
    public static byte[] PortWriteLoop(uint count)
    {
        var a = new Assembler(16);
        Label loop = a.CreateLabel();
        a.mov(ecx, count);
        a.mov(dx, ScratchPort);
        a.Label(ref loop);
        a.@out(dx, al);
        a.dec(ecx);
        a.jnz(loop);
        a.cli();
        a.hlt();
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), 0x7C00);
        return stream.ToArray();
    }
}
