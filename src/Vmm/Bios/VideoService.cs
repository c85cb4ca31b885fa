using Vmm.Devices;

namespace Vmm.Bios;

/// <summary>
/// int 10h. Text goes to COM1 — the guest's only output, as in kvmtool's BIOS — and into the VGA text buffer at
/// 0xB8000 (80×25, mode 3) with the cursor kept in the BIOS data area, so a program that positions the cursor, scrolls
/// or reads the mode gets sensible answers and the monitor can show the screen. Graphics modes are not emulated:
/// set-mode records the number and clears the text screen.
/// </summary>
public sealed class VideoService(BiosMemory memory, ISerialSink serial)
{
    private const byte DefaultAttribute = 0x07;

    public void Handle(BiosFrame f)
    {
        switch (f.AH)
        {
            case 0x00: // set mode
                memory.WriteByte(BiosDataArea.VideoMode, (byte)(f.AL & 0x7F));
                if ((f.AL & 0x80) == 0)
                {
                    Scroll(0, 0, 0, BiosLayout.Rows - 1, BiosLayout.Columns - 1, DefaultAttribute, up: true);
                }

                SetCursor(0, 0, 0);
                f.AL = 0x30;
                break;
            case 0x01: // cursor shape
                memory.WriteWord(BiosDataArea.CursorShape, f.CX);
                break;
            case 0x02:
                SetCursor(f.BH, f.DH, f.DL);
                break;
            case 0x03:
                (f.DH, f.DL) = Cursor(f.BH);
                f.CX = memory.ReadWord(BiosDataArea.CursorShape);
                break;
            case 0x05:
                memory.WriteByte(BiosDataArea.ActivePage, (byte)(f.AL & 7));
                break;
            case 0x06:
            case 0x07:
                Scroll(f.AL, f.CH, f.CL, f.DH, f.DL, f.BH, up: f.AH == 0x06);
                break;
            case 0x08: // read character and attribute at the cursor
            {
                (byte row, byte column) = Cursor(0);
                f.AX = memory.ReadWord(Cell(row, column));
                break;
            }

            case 0x09: // write character and attribute, CX times, cursor unmoved
            case 0x0A: // character only
            {
                (byte row, byte column) = Cursor(0);
                ulong cell = Cell(row, column);
                for (int i = 0; i < f.CX && cell < BiosLayout.TextBuffer + (BiosLayout.Rows * BiosLayout.Columns * 2); i++, cell += 2)
                {
                    memory.WriteByte(cell, f.AL);
                    if (f.AH == 0x09)
                    {
                        memory.WriteByte(cell + 1, f.BL);
                    }
                }

                break;
            }

            case 0x0E:
                serial.Write([f.AL]);
                Teletype(f.AL, attribute: null);
                break;
            case 0x0F:
                f.AL = memory.ReadByte(BiosDataArea.VideoMode);
                f.AH = BiosLayout.Columns;
                f.BH = memory.ReadByte(BiosDataArea.ActivePage);
                break;
            case 0x13:
                WriteString(f);
                break;
        }
    }

    /// <summary>AH=13h: CX characters from ES:BP at row DH, column DL; AL bit 1: characters and attributes alternate; bit 0: move the cursor.</summary>
    private void WriteString(BiosFrame f)
    {
        (byte savedRow, byte savedColumn) = Cursor(0);
        SetCursor(0, f.DH, f.DL);
        bool withAttributes = (f.AL & 2) != 0;
        ulong address = BiosMemory.Linear(f.Es, f.BP);
        var text = new byte[f.CX];
        for (int i = 0; i < f.CX; i++)
        {
            byte c = memory.ReadByte(address++);
            byte attribute = f.BL;
            if (withAttributes)
            {
                attribute = memory.ReadByte(address++);
            }

            text[i] = c;
            Teletype(c, attribute);
        }

        serial.Write(text);
        if ((f.AL & 1) == 0)
        {
            SetCursor(0, savedRow, savedColumn);
        }
    }

    /// <summary>One character at the cursor: CR, LF, BS and BEL act, anything else is drawn; the screen scrolls at the bottom.</summary>
    private void Teletype(byte c, byte? attribute)
    {
        (byte row, byte column) = Cursor(0);
        switch (c)
        {
            case (byte)'\r':
                column = 0;
                break;
            case (byte)'\n':
                row++;
                break;
            case 0x08:
                if (column > 0)
                {
                    column--;
                }

                break;
            case 0x07:
                break;
            default:
                ulong cell = Cell(row, column);
                memory.WriteByte(cell, c);
                if (attribute is { } a)
                {
                    memory.WriteByte(cell + 1, a);
                }
                else if (memory.ReadByte(cell + 1) == 0)
                {
                    memory.WriteByte(cell + 1, DefaultAttribute);
                }

                column++;
                break;
        }

        if (column >= BiosLayout.Columns)
        {
            column = 0;
            row++;
        }

        if (row >= BiosLayout.Rows)
        {
            Scroll(1, 0, 0, BiosLayout.Rows - 1, BiosLayout.Columns - 1, DefaultAttribute, up: true);
            row = BiosLayout.Rows - 1;
        }

        SetCursor(0, row, column);
    }

    /// <summary>Scrolls the window [top..bottom] × [left..right] by <paramref name="lines"/> (0: clear it), filling with blanks of <paramref name="attribute"/>.</summary>
    private void Scroll(byte lines, byte top, byte left, byte bottom, byte right, byte attribute, bool up)
    {
        bottom = Math.Min(bottom, (byte)(BiosLayout.Rows - 1));
        right = Math.Min(right, (byte)(BiosLayout.Columns - 1));
        if (top > bottom || left > right)
        {
            return;
        }

        int height = bottom - top + 1;
        if (lines == 0 || lines > height)
        {
            lines = (byte)height;
        }

        int width = right - left + 1;
        var row = new byte[width * 2];
        for (int i = 0; i < height; i++)
        {
            int target = up ? top + i : bottom - i;
            int source = up ? target + lines : target - lines;
            if (i < height - lines)
            {
                memory.Read(Cell(source, left), row);
            }
            else
            {
                for (int x = 0; x < width; x++)
                {
                    row[x * 2] = (byte)' ';
                    row[(x * 2) + 1] = attribute;
                }
            }

            memory.Write(Cell(target, left), row);
        }
    }

    private static ulong Cell(int row, int column) => BiosLayout.TextBuffer + (ulong)(((row * BiosLayout.Columns) + column) * 2);

    private (byte Row, byte Column) Cursor(byte page)
    {
        ushort position = memory.ReadWord(BiosDataArea.CursorPositions + ((ulong)(page & 7) * 2));
        return ((byte)(position >> 8), (byte)position);
    }

    private void SetCursor(byte page, byte row, byte column) =>
        memory.WriteWord(BiosDataArea.CursorPositions + ((ulong)(page & 7) * 2), (ushort)((row << 8) | column));
}
