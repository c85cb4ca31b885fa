using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Vmm.Qmp.Hmp;

/// <summary>
/// QEMU's memory_dump layout for x and xp: lines of 8 bytes (byte units) or 16 bytes (larger units), each starting
/// with the 16-digit hex address and a colon, then the units, little-endian: hex as 0x with leading zeros, decimal
/// right-aligned, characters quoted with C escapes. An unreadable line ends the dump with "Cannot access memory".
/// </summary>
public static class HmpMemoryDump
{
    /// <summary>More than this many bytes in one dump is refused: the reply must stay a reasonable size.</summary>
    public const int MaxBytes = 64 * 1024;

    /// <summary>Reads guest memory at an address into the span; false when any byte of it is not readable.</summary>
    public delegate bool MemoryReader(ulong address, Span<byte> destination);

    public static string Format(ulong address, HmpDumpFormat format, MemoryReader read)
    {
        int unit = format.Size;
        long length = (long)unit * format.Count;
        if (length > MaxBytes)
        {
            throw new HmpSyntaxException($"dump too large: {length} bytes (vmm dumps at most {MaxBytes} bytes at a time)");
        }

        int lineSize = unit == 1 ? 8 : 16;
        int digits = format.Format switch
        {
            'o' => ((unit * 8) + 2) / 3,
            'u' or 'd' => ((unit * 8 * 10) + 32) / 33,
            _ => unit * 2,
        };

        // As in QEMU, characters are always printed one byte at a time, whatever the size letter said.
        if (format.Format == 'c')
        {
            unit = 1;
        }

        var text = new StringBuilder();
        Span<byte> line = stackalloc byte[16];
        while (length > 0)
        {
            text.Append(address.ToString("x16", CultureInfo.InvariantCulture)).Append(':');
            int count = (int)Math.Min(length, lineSize);
            if (!read(address, line[..count]))
            {
                text.Append(" Cannot access memory\r\n");
                break;
            }

            for (int i = 0; i + unit <= count; i += unit)
            {
                text.Append(' ');
                AppendUnit(text, format.Format, unit, digits, line.Slice(i, unit));
            }

            text.Append("\r\n");
            address += (ulong)count;
            length -= count;
        }

        return text.ToString();
    }

    private static void AppendUnit(StringBuilder text, char format, int unit, int digits, ReadOnlySpan<byte> bytes)
    {
        ulong value = unit switch
        {
            1 => bytes[0],
            2 => BinaryPrimitives.ReadUInt16LittleEndian(bytes),
            4 => BinaryPrimitives.ReadUInt32LittleEndian(bytes),
            _ => BinaryPrimitives.ReadUInt64LittleEndian(bytes),
        };

        switch (format)
        {
            case 'c':
                AppendChar(text, (byte)value);
                break;
            case 'd':
                int shift = 64 - (unit * 8);
                long signed = (long)(value << shift) >> shift;
                text.Append(signed.ToString(CultureInfo.InvariantCulture).PadLeft(digits));
                break;
            case 'u':
                text.Append(value.ToString(CultureInfo.InvariantCulture).PadLeft(digits));
                break;
            case 'o':
                text.Append((value == 0 ? "0" : "0" + Convert.ToString((long)value, 8)).PadLeft(digits));
                break;
            default:
                text.Append("0x").Append(value.ToString($"x{digits}", CultureInfo.InvariantCulture));
                break;
        }
    }

    private static void AppendChar(StringBuilder text, byte c)
    {
        text.Append('\'');
        text.Append(c switch
        {
            (byte)'\'' => "\\'",
            (byte)'\\' => "\\\\",
            (byte)'\n' => "\\n",
            (byte)'\r' => "\\r",
            >= 32 and <= 126 => ((char)c).ToString(),
            _ => $"\\x{c:x2}",
        });
        text.Append('\'');
    }
}
