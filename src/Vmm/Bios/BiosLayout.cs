namespace Vmm.Bios;

/// <summary>Where the BIOS and its data live in guest memory, and the ports its stubs call the VMM through.</summary>
public static class BiosLayout
{
    /// <summary>The ROM: the last 64 KiB below 1 MiB, segment F000.</summary>
    public const ulong RomBase = 0xF0000;
    public const int RomSize = 0x10000;
    public const ushort RomSegment = 0xF000;

    /// <summary>The extended BIOS data area: the last KiB of conventional memory (int 12h reports 639 KiB).</summary>
    public const ulong EbdaBase = 0x9FC00;
    public const ushort BaseMemoryKiB = 639;

    /// <summary>The VGA text buffer (mode 3: 80×25, a character and an attribute byte per cell).</summary>
    public const ulong TextBuffer = 0xB8000;
    public const int Columns = 80;
    public const int Rows = 25;

    /// <summary>
    /// One port per service: a stub for vector n writes the address of its register frame to <c>ServicePortBase + n</c>
    /// (32 bits: SS in the high half, SP in the low) and reads the same port back: non-zero means "nothing yet: wait
    /// for an interrupt and call again" (a key that has not arrived).
    /// </summary>
    public const ushort ServicePortBase = 0xB00;
    public const ushort ServicePortCount = 0x100;
}
