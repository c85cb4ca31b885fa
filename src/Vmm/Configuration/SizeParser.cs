using System.Globalization;

namespace Vmm.Configuration;

/// <summary>Parses sizes ("16M", "1G", "4096", "512KiB") and addresses ("0x7c00", "31744").</summary>
public static class SizeParser
{
    public static bool TryParseSize(string? text, out ulong bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        string s = text.Trim();
        ulong multiplier = 1;
        string upper = s.ToUpperInvariant();
        foreach ((string suffix, ulong factor) in new[] { ("KIB", 1ul << 10), ("MIB", 1ul << 20), ("GIB", 1ul << 30), ("KB", 1ul << 10), ("MB", 1ul << 20), ("GB", 1ul << 30), ("K", 1ul << 10), ("M", 1ul << 20), ("G", 1ul << 30), ("B", 1ul) })
        {
            if (upper.EndsWith(suffix, StringComparison.Ordinal))
            {
                multiplier = factor;
                s = s[..^suffix.Length];
                break;
            }
        }

        if (!TryParseNumber(s, out ulong value))
        {
            return false;
        }

        if (value != 0 && multiplier > ulong.MaxValue / value)
        {
            return false;
        }

        bytes = value * multiplier;
        return true;
    }

    public static bool TryParseNumber(string? text, out ulong value)
    {
        value = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        string s = text.Trim();
        return s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
            : ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>"16M" for 16 MiB: sizes as users type them.</summary>
    public static string Format(ulong bytes) => bytes switch
    {
        0 => "0",
        _ when bytes % (1ul << 30) == 0 => $"{bytes >> 30}G",
        _ when bytes % (1ul << 20) == 0 => $"{bytes >> 20}M",
        _ when bytes % (1ul << 10) == 0 => $"{bytes >> 10}K",
        _ => bytes.ToString(CultureInfo.InvariantCulture),
    };
}
