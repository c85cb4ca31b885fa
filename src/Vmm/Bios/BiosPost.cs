using Vmm.Devices;
using Vmm.Devices.Interrupts;

namespace Vmm.Bios;

/// <summary>
/// What the BIOS does before the boot sector runs (power-on self test, minus the testing), written in C# because it
/// runs once: copy the ROM to F000:0000, point the 256 vectors at its handlers, fill the BIOS data area, blank the text
/// screen, initialize the PICs (vectors 08h and 70h, only IRQ 0 and the cascade unmasked) and start PIT channel 0 at
/// 18.2 Hz. The vCPU then enters 0000:7C00 with interrupts enabled, as after a real BIOS.
/// </summary>
public static class BiosPost
{
    private static readonly Lazy<BiosRom> Rom = new(BiosRom.Build);

    public static void Run(BiosMemory memory, DualPic pic, Pit8254 pit)
    {
        BiosRom rom = Rom.Value;
        memory.Write(BiosLayout.RomBase, rom.Image, mayHoldCode: true);

        var ivt = new byte[256 * 4];
        for (int v = 0; v < 256; v++)
        {
            ivt[v * 4] = (byte)rom.Vectors[v];
            ivt[(v * 4) + 1] = (byte)(rom.Vectors[v] >> 8);
            ivt[(v * 4) + 2] = unchecked((byte)BiosLayout.RomSegment);
            ivt[(v * 4) + 3] = BiosLayout.RomSegment >> 8;
        }

        memory.Write(0, ivt, mayHoldCode: true);
        memory.Write(BiosDataArea.Base, new byte[0x100]);
        memory.WriteWord(BiosDataArea.Com1Port, Uart16550.Com1Base);
        memory.WriteWord(BiosDataArea.EbdaSegment, (ushort)(BiosLayout.EbdaBase >> 4));
        memory.WriteWord(BiosDataArea.EquipmentWord, 0x0220); // 80×25 colour, one serial port, no diskette
        memory.WriteWord(BiosDataArea.BaseMemory, BiosLayout.BaseMemoryKiB);
        memory.WriteWord(BiosDataArea.KeyboardHead, 0x1E);
        memory.WriteWord(BiosDataArea.KeyboardTail, 0x1E);
        memory.WriteWord(BiosDataArea.KeyboardBufferStart, 0x1E);
        memory.WriteWord(BiosDataArea.KeyboardBufferEnd, 0x3E);
        memory.WriteByte(BiosDataArea.VideoMode, 3);
        memory.WriteWord(BiosDataArea.VideoColumns, BiosLayout.Columns);
        memory.WriteWord(BiosDataArea.VideoPageSize, 0x1000);
        memory.WriteWord(BiosDataArea.CursorShape, 0x0607);
        memory.WriteWord(BiosDataArea.CrtcPort, 0x3D4);
        memory.WriteByte(BiosDataArea.VideoRowsMinusOne, BiosLayout.Rows - 1);
        memory.WriteByte(BiosDataArea.CharacterHeight, 16);
        memory.WriteByte(BiosDataArea.HardDiskCount, 1);
        memory.WriteDword(BiosDataArea.Ticks, ClockService.TicksSinceMidnight(DateTime.Now));
        memory.Write(BiosLayout.EbdaBase, new byte[0x400]);
        memory.WriteByte(BiosLayout.EbdaBase, 1); // EBDA size in KiB

        var screen = new byte[BiosLayout.Rows * BiosLayout.Columns * 2];
        for (int i = 0; i < screen.Length; i += 2)
        {
            screen[i] = (byte)' ';
            screen[i + 1] = 0x07;
        }

        memory.Write(BiosLayout.TextBuffer, screen);

        // ICW1 (edge, cascade, ICW4), ICW2 (vector base), ICW3 (cascade on IRQ 2), ICW4 (8086 mode), then the masks.
        WritePort(pic.MasterPorts, 0, 0x11);
        WritePort(pic.MasterPorts, 1, 0x08);
        WritePort(pic.MasterPorts, 1, 0x04);
        WritePort(pic.MasterPorts, 1, 0x01);
        WritePort(pic.SlavePorts, 0, 0x11);
        WritePort(pic.SlavePorts, 1, 0x70);
        WritePort(pic.SlavePorts, 1, 0x02);
        WritePort(pic.SlavePorts, 1, 0x01);
        WritePort(pic.MasterPorts, 1, 0xFA);
        WritePort(pic.SlavePorts, 1, 0xFF);

        // Channel 0, low then high byte, mode 3, count 0 (65536): 18.2065 Hz.
        WritePort(pit, 3, 0x36);
        WritePort(pit, 0, 0);
        WritePort(pit, 0, 0);
    }

    private static void WritePort(IPortDevice device, ushort offset, byte value) => device.Write(offset, [value]);
}
