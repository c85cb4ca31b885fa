namespace Vmm.Emulator.Decoding;

/// <summary>
/// A run of instructions decoded together: from an entry address to the first instruction that always transfers
/// control (or changes how the following bytes decode), a page end, or <see cref="MaxInstructions"/>. A block is
/// valid for one CS base and one code size; writing any of its bytes invalidates it (<see cref="CodeCache"/>).
/// </summary>
public sealed class Block
{
    public const int MaxInstructions = 64;

    public Block(uint linear, uint csBase, bool code32, DecodedInstruction[] instructions, uint endLinear)
    {
        Linear = linear;
        CsBase = csBase;
        Code32 = code32;
        Instructions = instructions;
        EndLinear = endLinear;
    }

    /// <summary>Linear (= physical, there is no paging) address of the first instruction byte.</summary>
    public uint Linear { get; }

    public uint CsBase { get; }

    /// <summary>Decoded as 32-bit code (CS.D set).</summary>
    public bool Code32 { get; }

    public DecodedInstruction[] Instructions { get; }

    /// <summary>One past the last instruction byte (may be in the next page).</summary>
    public uint EndLinear { get; }

    /// <summary>Cleared when the block's bytes change: a stale reference (a chained successor) must not run it.</summary>
    public bool Valid { get; set; } = true;

    /// <summary>
    /// The blocks control last went to from this one, most recent first (a loop's own head and its exit, a
    /// conditional branch's two sides), so that the execution loop finds its next block without a cache lookup.
    /// Fields rather than properties: the loop swaps them on every miss. A successor is run only after the same
    /// checks a lookup makes (valid, same entry, CS base and code size).
    /// </summary>
    internal Block? Next0;

    internal Block? Next1;
}
