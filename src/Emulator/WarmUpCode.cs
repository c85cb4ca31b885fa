using Vmm.Accelerator;
using Vmm.Emulator.Processor;
using Vmm.Ram;

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
        ram.Write(Entry, Code);
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

    /// <summary>
    /// The code, assembled once by nasm (kept as bytes so that the warm-up compiles the interpreter, not an assembler):
    /// <code>
    ///         mov cx, 300
    ///         mov esi, 0x2000
    /// loop:   inc byte [esi]          ; a32
    ///         add esi, 16
    ///         mov eax, [esi]
    ///         xor eax, ebx
    ///         and ax, 0x7FFF
    ///         shl eax, 1
    ///         cmp esi, 0x8000
    ///         jb next
    ///         mov esi, 0x2000
    /// next:   push cx
    ///         call sub
    ///         pop cx
    ///         dec cx
    ///         jnz loop
    ///         hlt
    /// sub:    push di
    ///         mov di, 0x9000
    ///         push cx
    ///         mov cx, 8
    ///         rep stosd
    ///         pop cx
    ///         mov dx, 0x80
    ///         out dx, al
    ///         in al, dx
    ///         pop di
    ///         ret
    /// </code>
    /// </summary>
    private static ReadOnlySpan<byte> Code =>
    [
        0xb9, 0x2c, 0x01, 0x66, 0xbe, 0x00, 0x20, 0x00, 0x00, 0x67, 0xfe, 0x06,
        0x66, 0x83, 0xc6, 0x10, 0x66, 0x67, 0x8b, 0x06, 0x66, 0x31, 0xd8, 0x25,
        0xff, 0x7f, 0x66, 0xd1, 0xe0, 0x66, 0x81, 0xfe, 0x00, 0x80, 0x00, 0x00,
        0x72, 0x06, 0x66, 0xbe, 0x00, 0x20, 0x00, 0x00, 0x51, 0xe8, 0x05, 0x00,
        0x59, 0x49, 0x75, 0xd5, 0xf4, 0x57, 0xbf, 0x00, 0x90, 0x51, 0xb9, 0x08,
        0x00, 0xf3, 0x66, 0xab, 0x59, 0xba, 0x80, 0x00, 0xee, 0xec, 0x5f, 0xc3,
    ];
}
