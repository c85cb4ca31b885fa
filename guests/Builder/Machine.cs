namespace Vmm.Guests;

/// <summary>
/// The parts of the vmm machine contract the guests rely on (guests/README.md has the prose).
/// There is no BIOS and no firmware table: everything a guest needs is a constant here or
/// something it probes for itself.
/// </summary>
public static class Machine
{
    /// <summary>COM1 transmit holding register (write) / receive buffer register (read).</summary>
    public const ushort Com1Data = 0x3F8;

    /// <summary>COM1 line status register.</summary>
    public const ushort Com1Lsr = 0x3FD;

    /// <summary>LSR bit: a received byte is waiting in RBR.</summary>
    public const byte LsrDataReady = 0x01;

    /// <summary>LSR bit: THR is empty, the next byte may be written.</summary>
    public const byte LsrThrEmpty = 0x20;

    /// <summary>isa-debug-exit: writing v ends the VMM with exit status (v &lt;&lt; 1) | 1.</summary>
    public const byte DebugExitPort = 0xF4;

    /// <summary>
    /// free-page-hint device, 32-bit accesses only: read STATUS (a non-zero request id while the VMM wants hints), or
    /// write the base of a free range.
    /// </summary>
    public const ushort FreePageHintStatusOrBase = 0x5A0;

    /// <summary>free-page-hint device: write the free range's length (bytes); this write commits the hint.</summary>
    public const ushort FreePageHintLength = 0x5A4;

    /// <summary>Initial SP; the stack grows down from just below the image.</summary>
    public const ushort StackTop = 0x7C00;

    /// <summary>Start of the memory above the real-mode 1 MiB, where memory tests and workloads run.</summary>
    public const uint HighMemoryStart = 0x0010_0000;

    /// <summary>The RAM probe steps by 1 MiB.</summary>
    public const uint ProbeStep = 0x0010_0000;

    /// <summary>The VMM never has RAM at or above 3 GiB; the probe stops here.</summary>
    public const uint ProbeLimit = 0xC000_0000;

    /// <summary>A dword counter that spin and tsc-counter increment; tests read it from guest RAM.</summary>
    public const ushort CounterAddress = 0x6000;

    /// <summary>The last TSC value tsc-counter saw (8 bytes, little-endian EDX:EAX).</summary>
    public const ushort LastTscAddress = 0x6008;

    /// <summary>The VMM exit status for a debug-exit write of <paramref name="value"/>.</summary>
    public static int DebugExitStatus(byte value) => (value << 1) | 1;
}
