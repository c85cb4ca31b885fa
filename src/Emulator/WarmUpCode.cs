using Iced.Intel;
using Vmm.Accelerator;
using Vmm.Emulator.Processor;
using Vmm.Ram;
using static Iced.Intel.AssemblerRegisters;

namespace Vmm.Emulator;

/// <summary>
/// A few hundred iterations of the instructions real-mode guests spend their time in (moves, ALU, compares and
/// branches, 32-bit addressing, the stack, calls, string stores, port I/O), run on a scratch CPU so the JIT has
/// compiled the interpreter's paths before they matter.
/// </summary>
internal static class WarmUpCode
{
    public const ulong RamSize = 64 << 10;

    private const uint Entry = 0x1000;

    public static void Run(RamBlock ram, EmulatorVcpu vcpu)
    {
        byte[] code = Assemble();
        ram.Write(Entry, code);
        Cpu cpu = vcpu.Cpu;
        cpu.FlushCaches();
        cpu.Eip = Entry;
        unsafe
        {
            cpu.Regs[RegisterIndex.Esp] = 0xF000;
        }

        if (cpu.Run(singleStep: false) != CpuStop.Halted)
        {
            throw new InvalidOperationException($"the warm-up code did not halt (EIP 0x{cpu.Eip:x})");
        }
    }

    private static byte[] Assemble()
    {
        var a = new Assembler(16);
        Label loop = a.CreateLabel();
        Label subroutine = a.CreateLabel();
        Label next = a.CreateLabel();
        a.mov(cx, 300);
        a.mov(esi, 0x2000);
        a.Label(ref loop);
        a.inc(__byte_ptr[esi]);
        a.add(esi, 16);
        a.mov(eax, __dword_ptr[esi]);
        a.xor(eax, ebx);
        a.and(ax, 0x7FFF);
        a.shl(eax, 1);
        a.cmp(esi, 0x8000);
        a.jb(next);
        a.mov(esi, 0x2000);
        a.Label(ref next);
        a.push(cx);
        a.call(subroutine);
        a.pop(cx);
        a.dec(cx);
        a.jnz(loop);
        a.hlt();
        a.Label(ref subroutine);
        a.push(di);
        a.mov(di, 0x9000);
        a.push(cx);
        a.mov(cx, 8);
        a.rep.stosd();
        a.pop(cx);
        a.mov(dx, 0x80);
        a.@out(dx, al);
        a.@in(al, dx);
        a.pop(di);
        a.ret();
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), Entry);
        return stream.ToArray();
    }
}
