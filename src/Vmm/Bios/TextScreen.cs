using System.Text;
using Vmm.Machine;

namespace Vmm.Bios;

/// <summary>
/// The 80×25 VGA text screen as text: the characters of the buffer at 0xB8000 (attributes dropped), one line per row,
/// trailing blanks trimmed. What the monitor's `info screen` prints; it reads guest RAM, so it shows whatever the
/// guest put there, through the BIOS or directly.
/// </summary>
public static class TextScreen
{
    public static string Render(GuestMemory memory)
    {
        var cells = new byte[BiosLayout.Rows * BiosLayout.Columns * 2];
        int got = memory.Read(BiosLayout.TextBuffer, cells);
        var text = new StringBuilder();
        for (int row = 0; row < BiosLayout.Rows; row++)
        {
            var line = new StringBuilder(BiosLayout.Columns);
            for (int column = 0; column < BiosLayout.Columns; column++)
            {
                int at = ((row * BiosLayout.Columns) + column) * 2;
                byte c = at < got ? cells[at] : (byte)' ';

                // Code page 437's control-range glyphs and graphics have no one-byte equivalent: show a dot.
                line.Append(c is >= 0x20 and < 0x7F ? (char)c : c == 0 ? ' ' : '.');
            }

            text.Append(line.ToString().TrimEnd()).Append("\r\n");
        }

        return text.ToString();
    }
}
