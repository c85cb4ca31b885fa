namespace Vmm.Accelerator.State;

/// <summary>The general registers, RIP and RFLAGS (KVM's kvm_regs, field for field).</summary>
public record struct GeneralRegisters
{
    public ulong Rax;
    public ulong Rbx;
    public ulong Rcx;
    public ulong Rdx;
    public ulong Rsi;
    public ulong Rdi;
    public ulong Rsp;
    public ulong Rbp;
    public ulong R8;
    public ulong R9;
    public ulong R10;
    public ulong R11;
    public ulong R12;
    public ulong R13;
    public ulong R14;
    public ulong R15;
    public ulong Rip;
    public ulong Rflags;

    /// <summary>RFLAGS.IF: maskable interrupts enabled.</summary>
    public const ulong InterruptFlag = 1ul << 9;

    /// <summary>RFLAGS bit 1 reads as one on every x86 CPU.</summary>
    public const ulong ReservedOne = 1ul << 1;
}
