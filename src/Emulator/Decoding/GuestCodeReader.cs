using Iced.Intel;
using Vmm.Emulator.Memory;

namespace Vmm.Emulator.Decoding;

/// <summary>
/// Feeds Iced the bytes of one instruction from guest RAM, and keeps them (the binder scans the prefixes for 0x67).
/// A byte outside RAM ends the fetch: Iced sees no more bytes and the decoder notes <see cref="FetchFailed"/>.
/// </summary>
internal sealed unsafe class GuestCodeReader(GuestPhysicalMemory memory) : CodeReader
{
    private readonly byte[] bytes = new byte[16];
    private uint next;
    private int count;

    /// <summary>The bytes read for the current instruction.</summary>
    public ReadOnlySpan<byte> Bytes => bytes.AsSpan(0, count);

    public bool FetchFailed { get; private set; }

    public void Start(uint linear)
    {
        next = linear;
        count = 0;
        FetchFailed = false;
    }

    public override int ReadByte()
    {
        uint page = next >> GuestPhysicalMemory.PageShift;
        nint host = memory.ReadPages[page];
        if (host == 0)
        {
            host = memory.Map(page);
        }

        if (host == 0 || count == bytes.Length)
        {
            FetchFailed = true;
            return -1;
        }

        byte value = *(byte*)(host + (nint)(next & GuestPhysicalMemory.PageMask));
        bytes[count++] = value;
        next++;
        return value;
    }
}
