namespace Vmm.Accelerator.State;

/// <summary>
/// A segment register: the selector and its hidden descriptor cache (base, limit, attributes), which is what the CPU
/// uses. In real mode the cache keeps whatever was loaded last — that is what makes unreal mode work.
/// </summary>
public record struct Segment
{
    public ulong Base;

    /// <summary>The limit in bytes (already scaled by the granularity bit).</summary>
    public uint Limit;

    public ushort Selector;

    /// <summary>Descriptor type (4 bits: for code/data, accessed, R/W, E/C, code).</summary>
    public byte Type;

    public bool Present;

    public byte Dpl;

    /// <summary>D/B: 32-bit default operand size (code) or stack (SS).</summary>
    public bool DefaultBig;

    /// <summary>S: a code or data segment (not a system descriptor).</summary>
    public bool CodeOrData;

    public bool Long;

    public bool Granularity;

    public bool Available;

    /// <summary>Not usable (a null selector loaded in protected mode).</summary>
    public bool Unusable;

    /// <summary>A real-mode segment as the CPU leaves it after reset or a real-mode load: base = selector × 16, 64 KiB.</summary>
    public static Segment RealMode(ushort selector, bool code = false) => new()
    {
        Selector = selector,
        Base = (ulong)selector << 4,
        Limit = 0xFFFF,
        Type = code ? (byte)0xB : (byte)0x3, // code: execute/read, accessed; data: read/write, accessed
        Present = true,
        CodeOrData = true,
    };
}
