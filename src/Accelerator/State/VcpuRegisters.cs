namespace Vmm.Accelerator.State;

/// <summary>
/// General, segment, descriptor-table and control registers (KVM's kvm_regs and kvm_sregs): what diagnostics, the
/// monitor and the loader need of a vCPU.
/// </summary>
public sealed record VcpuRegisters
{
    /// <summary>CR0.PE: protected mode.</summary>
    public const ulong Cr0ProtectionEnabled = 1ul << 0;

    /// <summary>CR0.PG: paging.</summary>
    public const ulong Cr0PagingEnabled = 1ul << 31;

    public GeneralRegisters General { get; init; }

    public Segment Cs { get; init; }

    public Segment Ds { get; init; }

    public Segment Es { get; init; }

    public Segment Fs { get; init; }

    public Segment Gs { get; init; }

    public Segment Ss { get; init; }

    public Segment Tr { get; init; }

    public Segment Ldt { get; init; }

    public DescriptorTable Gdt { get; init; }

    public DescriptorTable Idt { get; init; }

    public ulong Cr0 { get; init; }

    public ulong Cr2 { get; init; }

    public ulong Cr3 { get; init; }

    public ulong Cr4 { get; init; }

    public ulong Cr8 { get; init; }

    public ulong Efer { get; init; }

    public ulong ApicBase { get; init; }

    /// <summary>
    /// An external interrupt KVM has accepted but not yet injected, as a 256-bit bitmap (kvm_sregs.interrupt_bitmap);
    /// four words, all zero when none is pending.
    /// </summary>
    public ulong[] PendingInterruptBitmap { get; init; } = new ulong[4];

    /// <summary>Code bitness from CS: 64 (long), 32 (D set) or 16.</summary>
    public int CodeBitness => Cs.Long ? 64 : Cs.DefaultBig ? 32 : 16;

    /// <summary>The linear address of CS:IP (IP cut to 16 bits in 16-bit code).</summary>
    public ulong InstructionPointerLinear => Cs.Base + (CodeBitness == 16 ? General.Rip & 0xFFFF : General.Rip);
}
