using Vmm.Accelerator;
using Vmm.Accelerator.State;

namespace Vmm.Diagnostics;

/// <summary>
/// --trace: the guest runs single-stepping (<see cref="IVcpu.SingleStep"/>), and every instruction is printed before it executes
/// (CS:IP, bytes, disassembly) to the given writer — stderr, never the serial stdout.
/// </summary>
public sealed class InstructionTracer(Disassembler disassembler, TextWriter output)
{
    public long Steps { get; private set; }

    /// <summary>
    /// Prints the instruction at CS:IP. Returns true when it is HLT with interrupts off: under single-step KVM's debug
    /// trap pre-empts KVM_EXIT_HLT, so the caller powers off here, as the untraced guest would.
    /// </summary>
    public bool Trace(IVcpu vcpu)
    {
        VcpuRegisters registers = vcpu.GetRegisters();
        Steps++;
        string line = disassembler.DisassembleAt(registers, 1)[0];
        output.WriteLine($"trace: {line}");
        return line.EndsWith("  hlt", StringComparison.Ordinal) && (registers.General.Rflags & GeneralRegisters.InterruptFlag) == 0;
    }
}
