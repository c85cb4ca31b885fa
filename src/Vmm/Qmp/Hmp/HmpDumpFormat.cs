namespace Vmm.Qmp.Hmp;

/// <summary>
/// The /FMT of QEMU's x and xp commands: an optional count, then any of the format letters x (hex), d (signed),
/// u (unsigned), o (octal), c (characters) and the size letters b (1), h (2), w (4), g (8), in any order.
/// Defaults as in a fresh QEMU monitor: count 1, format x, size w.
/// </summary>
public readonly record struct HmpDumpFormat(int Count, char Format, int Size)
{
    public static HmpDumpFormat Default { get; } = new(1, 'x', 4);

    /// <summary>Parses the text after the '/'.</summary>
    public static HmpDumpFormat Parse(string text)
    {
        int position = 0;
        int count = 1;
        if (position < text.Length && char.IsAsciiDigit(text[position]))
        {
            long value = 0;
            while (position < text.Length && char.IsAsciiDigit(text[position]))
            {
                value = Math.Min((value * 10) + (text[position++] - '0'), int.MaxValue);
            }

            count = (int)value;
        }

        char format = Default.Format;
        int size = Default.Size;
        for (; position < text.Length; position++)
        {
            char c = text[position];
            switch (c)
            {
                case 'x' or 'd' or 'u' or 'o' or 'c':
                    format = c;
                    break;
                case 'b':
                    size = 1;
                    break;
                case 'h':
                    size = 2;
                    break;
                case 'w':
                    size = 4;
                    break;
                case 'g' or 'L':
                    size = 8;
                    break;
                case 'i':
                    throw new HmpSyntaxException("format 'i' (disassembly) is not supported by vmm");
                default:
                    throw new HmpSyntaxException($"invalid char in format: '{c}'");
            }
        }

        return new HmpDumpFormat(count, format, size);
    }
}
