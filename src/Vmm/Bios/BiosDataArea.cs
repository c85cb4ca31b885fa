namespace Vmm.Bios;

/// <summary>Offsets in the BIOS data area (segment 0x40, physical 0x400) that this BIOS fills and keeps.</summary>
public static class BiosDataArea
{
    public const ulong Base = 0x400;
    public const ulong Com1Port = 0x400;
    public const ulong EbdaSegment = 0x40E;
    public const ulong EquipmentWord = 0x410;
    public const ulong BaseMemory = 0x413;
    public const ulong KeyboardFlags = 0x417;
    public const ulong KeyboardHead = 0x41A;
    public const ulong KeyboardTail = 0x41C;
    public const ulong VideoMode = 0x449;
    public const ulong VideoColumns = 0x44A;
    public const ulong VideoPageSize = 0x44C;
    public const ulong CursorPositions = 0x450;
    public const ulong CursorShape = 0x460;
    public const ulong ActivePage = 0x462;
    public const ulong CrtcPort = 0x463;
    public const ulong DiskStatus = 0x474;
    public const ulong HardDiskCount = 0x475;
    public const ulong Ticks = 0x46C;
    public const ulong MidnightFlag = 0x470;
    public const ulong KeyboardBufferStart = 0x480;
    public const ulong KeyboardBufferEnd = 0x482;
    public const ulong VideoRowsMinusOne = 0x484;
    public const ulong CharacterHeight = 0x485;

    /// <summary>Ticks in a day at 18.2065 Hz (the BIOS wraps the count at midnight and sets the midnight flag).</summary>
    public const uint TicksPerDay = 0x1800B0;
}
