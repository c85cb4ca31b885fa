using System.Runtime.CompilerServices;
using Vmm.Emulator.Decoding;

namespace Vmm.Emulator.Processor;

/// <summary>Why <see cref="Cpu.Run"/> returned.</summary>
public enum CpuStop
{
    /// <summary><see cref="Cpu.Kick"/> was called (or had been, before the run).</summary>
    Kicked,

    /// <summary>HLT: EIP is past it.</summary>
    Halted,

    /// <summary>One instruction was executed (single-step).</summary>
    Stepped,

    /// <summary>Triple fault.</summary>
    ShutDown,

    /// <summary>Execution reached an address with no RAM (<see cref="Cpu.FailureDetail"/>).</summary>
    Failed,
}

/// <summary>
/// The execution loop: look up the decoded block at CS:EIP (decoding it on a miss), run its instructions through
/// their function pointers, and between blocks check for a kick. An instruction that branches or must end the block
/// (I/O, a mode change, a write to code) says so in <see cref="Stop"/>; an exception unwinds to here, where it is
/// delivered with EIP at the faulting instruction.
/// </summary>
public sealed unsafe partial class Cpu
{
    private const uint PagingEnabled = 1u << 31;

    private int kickRequested;

    /// <summary>What went wrong when <see cref="Run"/> returned <see cref="CpuStop.Failed"/>.</summary>
    public string? FailureDetail { get; private set; }

    private readonly BlockDecoder decoder;

    /// <summary>The external interrupt line (the PIC), or null: then no external interrupt ever arrives.</summary>
    public Accelerator.IInterruptSource? Interrupts { get; set; }

    /// <summary>Any thread: makes <see cref="Run"/> return <see cref="CpuStop.Kicked"/> at the next block boundary (or at once).</summary>
    public void Kick() => Volatile.Write(ref kickRequested, 1);

    public void AcknowledgeKick() => Volatile.Write(ref kickRequested, 0);

    /// <summary>The effective address of the memory operand (offset in its segment).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Address(ref DecodedInstruction d) =>
        (Regs[d.Base] + (Regs[d.Index] << d.Scale) + d.Disp) & d.AddressMask;

    /// <summary>Runs until a kick, HLT, a triple fault or (with <paramref name="singleStep"/>) one instruction.</summary>
    /// <remarks>
    /// Compiled fully optimized at once: a vCPU enters this loop once and stays in it for seconds, so tiering would
    /// only ever reach it by on-stack replacement, whose code keeps the unoptimized frame.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public CpuStop Run(bool singleStep)
    {
        if (ShutDown)
        {
            return CpuStop.ShutDown;
        }

        Halted = false;

        // The block that ran last: its successors are tried before the code cache.
        Block? previous = null;
        while (true)
        {
            // A kick is consumed by the run it ends, as KVM's immediate_exit is: whoever kicked has already said
            // what it wants (the runner checks its control requests before the next run).
            if (Volatile.Read(ref kickRequested) != 0 && Interlocked.Exchange(ref kickRequested, 0) != 0)
            {
                return CpuStop.Kicked;
            }

            // Paging is outside this CPU's scope. A MOV to CR0 ends its block and a state load happens between runs,
            // so checking here, before each block, means nothing ever runs with paging on.
            if ((Cr0 & PagingEnabled) != 0)
            {
                FailureDetail = "the guest enabled paging (CR0.PG), which the software CPU does not implement";
                return CpuStop.Failed;
            }

            // External interrupts are taken at block boundaries, which are instruction boundaries: with IF set and no
            // STI / MOV SS shadow pending. A block is at most 64 instructions, so the latency stays tiny; the shadow
            // is held until the end of the block after the one that set it, which is later than the hardware but
            // never earlier.
            // IF and the shadow are tested first: they are fields, the line is an interface call.
            if ((FlagsRest & IF) != 0 && InterruptShadow == 0 && Interrupts is { InterruptPending: true } line)
            {
                TakeExternalInterrupt(line.AcknowledgeInterrupt());
                if (ShutDown)
                {
                    return CpuStop.ShutDown;
                }
            }

            bool code32 = Segments[SegmentIndex.Cs].DefaultBig;
            uint csBase = SegBase[SegmentIndex.Cs];
            uint linear = csBase + Eip;
            Block? block = Chained(previous, linear, csBase, code32);
            if (block is null)
            {
                block = memory.Code.Lookup(linear);
                if (block is null || !block.Valid || block.CsBase != csBase || block.Code32 != code32)
                {
                    block = decoder.Decode(linear, csBase, Eip, code32);
                    if (block is null)
                    {
                        FailureDetail = $"instruction fetch from 0x{linear:x8}, which is not RAM";
                        return CpuStop.Failed;
                    }
                }

                if (previous is not null)
                {
                    previous.Next1 = previous.Next0;
                    previous.Next0 = block;
                }
            }

            previous = block;
            ExecuteBlock(block, singleStep ? 1 : block.Instructions.Length);
            if (Halted)
            {
                return CpuStop.Halted;
            }

            if (ShutDown)
            {
                return CpuStop.ShutDown;
            }

            if (singleStep)
            {
                return CpuStop.Stepped;
            }
        }
    }

    /// <summary>
    /// The successor of <paramref name="previous"/> that starts at <paramref name="linear"/>, if it is still what a
    /// lookup would find: valid (its bytes unchanged; a replaced block is invalidated too) and decoded for this CS
    /// base and code size. Null sends the loop to the code cache.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Block? Chained(Block? previous, uint linear, uint csBase, bool code32)
    {
        if (previous is null)
        {
            return null;
        }

        Block? next = previous.Next0;
        if (next is null || next.Linear != linear)
        {
            next = previous.Next1;
            if (next is null || next.Linear != linear)
            {
                return null;
            }
        }

        return next.Valid && next.CsBase == csBase && next.Code32 == code32 ? next : null;
    }

    /// <summary>Enters the handler of an external interrupt, returning to the current CS:EIP.</summary>
    private void TakeExternalInterrupt(byte vector)
    {
        try
        {
            DeliverInterrupt(vector, null, software: false, returnEip: Eip);
        }
        catch (CpuException fault)
        {
            DeliverException(fault);
        }

        // Loading CS marks "the instruction jumped"; no instruction ran here, so nothing must carry that into the
        // first instruction of the handler (which would then not advance EIP and run twice).
        Stop = 0;
    }

    /// <summary>Drops every cached translation of guest memory (decoded code, mapped pages): the state or the memory was replaced.</summary>
    public void FlushCaches() => memory.ForgetAll();

    /// <summary>CR0 changed: PE switches how segments are checked.</summary>
    public void OnModeChanged() => RefreshAllSegmentLimits();
}
