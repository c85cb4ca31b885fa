using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Accelerator;
using Vmm.Accelerator.State;
using Vmm.Emulator.Decoding;
using Vmm.Emulator.Memory;

namespace Vmm.Emulator.Processor;

/// <summary>
/// The software x86 CPU's architectural state and the primitives its instructions are written in: registers,
/// lazily computed flags, segment-relative memory access with limit checks, the stack. The state is what KVM keeps
/// (general registers, EIP, EFLAGS, segment registers with their hidden descriptor caches, GDTR/IDTR, CR0–CR4, EFER,
/// the TSC), so a vCPU saved under one accelerator means the same under the other. Execution is in
/// <c>Cpu.Execution.cs</c>, exceptions and interrupts in <c>Cpu.Interrupts.cs</c>, segment loads in
/// <c>Cpu.Segments.cs</c>, memory in <c>Cpu.Memory.cs</c>.
/// </summary>
/// <remarks>
/// The hottest state lives in native memory behind pointers (the register file, segment bases and fast-path limits):
/// an instruction handler reaches a register with one load and one indexed access, and no bounds check.
/// </remarks>
public sealed unsafe partial class Cpu : IDisposable
{
    /// <summary>EFLAGS bits that are not arithmetic flags and are kept as they are: DF, IF, TF, IOPL, NT, RF, VM, AC, ID.</summary>
    public const uint DF = 1 << 10;
    public const uint IF = 1 << 9;
    public const uint TF = 1 << 8;
    public const uint IoplMask = 3 << 12;
    public const uint NT = 1 << 14;
    public const uint RF = 1 << 16;
    public const uint VM = 1 << 17;
    public const uint AC = 1 << 18;
    public const uint ID = 1 << 21;

    /// <summary>The EFLAGS bits that exist on this CPU (a 486 with CPUID): the rest read as zero, bit 1 as one.</summary>
    public const uint ImplementedFlags = LazyFlags.ArithmeticMask | TF | IF | DF | IoplMask | NT | RF | VM | AC | ID;

    /// <summary><see cref="Stop"/>: the handler set <see cref="Eip"/> (a branch was taken, an interrupt delivered).</summary>
    public const int StopJumped = 1;

    /// <summary><see cref="Stop"/>: end the block after this instruction (I/O, self-modifying write, mode change, HLT).</summary>
    public const int StopAfter = 2;

    private readonly GuestPhysicalMemory memory;
    private readonly IVcpuIo io;
    private readonly nint* readPages;
    private readonly nint* writePages;
    private readonly byte* dirtyMap;
    private bool disposed;

    public Cpu(GuestPhysicalMemory memory, IVcpuIo io)
    {
        this.memory = memory;
        this.io = io;
        readPages = memory.ReadPages;
        writePages = memory.WritePages;
        dirtyMap = memory.DirtyMap;
        Regs = (uint*)NativeMemory.AllocZeroed(RegisterIndex.FileSize, sizeof(uint));
        SegBase = (uint*)NativeMemory.AllocZeroed(8, sizeof(uint));
        ReadLimit = (long*)NativeMemory.AllocZeroed(8, sizeof(long));
        WriteLimit = (long*)NativeMemory.AllocZeroed(8, sizeof(long));
        decoder = new BlockDecoder(this);
        for (int i = 0; i < SegmentIndex.Count; i++)
        {
            LoadSegmentCache(i, Segment.RealMode(0, code: i == SegmentIndex.Cs));
        }
    }

    /// <summary>EAX..EDI by encoding, then a slot that is always zero (<see cref="RegisterIndex.Zero"/>).</summary>
    public readonly uint* Regs;

    /// <summary>Segment bases, by <see cref="SegmentIndex"/>.</summary>
    public readonly uint* SegBase;

    /// <summary>Per segment, the highest offset a read may touch on the fast path, or -1 to always check slowly.</summary>
    public readonly long* ReadLimit;

    /// <summary>Per segment, the highest offset a write may touch on the fast path, or -1 to always check slowly.</summary>
    public readonly long* WriteLimit;

    /// <summary>The hidden descriptor caches of ES, CS, SS, DS, FS, GS.</summary>
    public readonly Segment[] Segments = new Segment[SegmentIndex.Count];

    public Segment Tr;
    public Segment Ldtr;
    public DescriptorTable Gdtr;
    public DescriptorTable Idtr;

    /// <summary>
    /// EIP. Inside a block it is brought up to date only when control leaves the block; an instruction that needs its
    /// own address reads its <see cref="Decoding.DecodedInstruction.Ip"/> instead.
    /// </summary>
    public uint Eip;

    /// <summary>Non-zero when the instruction just executed ends its block (<see cref="StopJumped"/>, <see cref="StopAfter"/>).</summary>
    public int Stop;

    public FlagOp CcOp = FlagOp.Eflags;
    public uint CcDst;
    public uint CcSrc;
    public uint CcSrc2;

    /// <summary>EFLAGS without the six arithmetic flags (those are lazy: <see cref="CcOp"/>).</summary>
    public uint FlagsRest = 2;

    public uint Cr0;
    public uint Cr2;
    public uint Cr3;
    public uint Cr4;
    public ulong Cr8;
    public ulong Efer;
    public ulong ApicBase;
    public readonly uint[] Dr = new uint[8];

    /// <summary>The privilege level the CPU runs at: 0 in real mode, else CS's RPL.</summary>
    public int Cpl;

    /// <summary>Interrupts are held off for one more instruction (after STI or a load of SS): <see cref="VcpuEvents.InterruptShadow"/>.</summary>
    public byte InterruptShadow;

    /// <summary>Between HLT and the interrupt that would end it (MP state halted).</summary>
    public bool Halted;

    public GuestPhysicalMemory Memory => memory;

    public IVcpuIo Io => io;

    public bool ProtectedMode => (Cr0 & 1) != 0;

    /// <summary>SP or ESP as SS's B bit says: the mask of the stack pointer.</summary>
    public uint StackMask => Segments[SegmentIndex.Ss].DefaultBig ? 0xFFFF_FFFFu : 0xFFFFu;

    // Registers of each width. 8-bit registers are named by their byte offset in the file (RegisterIndex.ByteOffset).

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte GetReg8(int byteOffset) => ((byte*)Regs)[byteOffset];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetReg8(int byteOffset, byte value) => ((byte*)Regs)[byteOffset] = value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort GetReg16(int index) => *(ushort*)(Regs + index);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetReg16(int index, ushort value) => *(ushort*)(Regs + index) = value;

    // Flags.

    /// <summary>The whole EFLAGS register, arithmetic flags computed now.</summary>
    public uint Eflags
    {
        get => LazyFlags.ComputeAll(CcOp, CcDst, CcSrc, CcSrc2) | FlagsRest;
        set => SetEflags(value, ImplementedFlags);
    }

    /// <summary>Writes the bits of <paramref name="value"/> that <paramref name="writable"/> allows; arithmetic flags and DF always.</summary>
    public void SetEflags(uint value, uint writable)
    {
        CcSrc = value & LazyFlags.ArithmeticMask;
        CcOp = FlagOp.Eflags;
        uint keep = writable | DF;
        FlagsRest = ((FlagsRest & ~keep) | (value & keep) | 2) & ImplementedFlags & ~LazyFlags.ArithmeticMask | 2;
    }

    /// <summary>The carry flag, 0 or 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Carry() => LazyFlags.ComputeCarry(CcOp, CcDst, CcSrc, CcSrc2);

    /// <summary>Collapses the lazy flags into <see cref="FlagOp.Eflags"/> form (before an instruction changes only some flags).</summary>
    public uint MaterializeFlags()
    {
        uint flags = LazyFlags.ComputeAll(CcOp, CcDst, CcSrc, CcSrc2);
        CcSrc = flags;
        CcOp = FlagOp.Eflags;
        return flags;
    }

    /// <summary>String instructions step by this many bytes per element of <paramref name="size"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Step(int size) => (FlagsRest & DF) != 0 ? -size : size;

    public void Dispose()
    {
        // The machine disposes its vCPUs and the VM disposes them again: free once.
        if (disposed)
        {
            return;
        }

        disposed = true;
        NativeMemory.Free(Regs);
        NativeMemory.Free(SegBase);
        NativeMemory.Free(ReadLimit);
        NativeMemory.Free(WriteLimit);
    }
}
