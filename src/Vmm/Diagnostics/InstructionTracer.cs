using Vmm.Kvm;

namespace Vmm.Diagnostics;

/// <summary>
/// --trace: the guest runs with KVM single-stepping on, and every instruction is printed before it executes
/// (CS:IP, bytes, disassembly) to the given writer — stderr, never the serial stdout.
/// </summary>
public sealed class InstructionTracer(Disassembler disassembler, TextWriter output)
{
    private const ulong InterruptFlag = 1 << 9;

    public long Steps { get; private set; }

    /// <summary>
    /// Prints the instruction at CS:IP. Returns true when it is HLT with interrupts off: under single-step the debug
    /// trap pre-empts KVM_EXIT_HLT, so the caller must power off here, as the untraced guest would.
    /// </summary>
    public bool Trace(KvmVcpu vcpu)
    {
        var regs = vcpu.GetRegs();
        var sregs = vcpu.GetSregs();
        Steps++;
        string line = disassembler.DisassembleAt(regs, sregs, 1)[0];
        output.WriteLine($"trace: {line}");
        return line.EndsWith("  hlt", StringComparison.Ordinal) && (regs.Rflags & InterruptFlag) == 0;
    }
}
