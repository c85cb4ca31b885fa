using System.Text;

namespace Vmm.Migration;

/// <summary>
/// Text that came from the migration peer (block and section names, the destination's Error message), made safe to
/// print: control characters and other invisible code points become escapes (a name must not move the terminal's
/// cursor, forge a log line or ring the bell) and the whole is cut to a length a one-line message can carry.
/// </summary>
public static class PeerText
{
    /// <summary>Characters kept of a name before it is cut.</summary>
    public const int MaxNameChars = 64;

    /// <summary>Characters kept of a message (an Error record's text) before it is cut.</summary>
    public const int MaxMessageChars = 400;

    /// <summary>A name from the peer, escaped and cut to <see cref="MaxNameChars"/>.</summary>
    public static string Name(string text) => Escape(text, MaxNameChars);

    /// <summary>A message from the peer, escaped and cut to <see cref="MaxMessageChars"/>.</summary>
    public static string Message(string text) => Escape(text, MaxMessageChars);

    public static string Escape(string text, int maxChars)
    {
        var escaped = new StringBuilder(Math.Min(text.Length, maxChars) + 8);
        int kept = 0;
        foreach (Rune rune in text.EnumerateRunes())
        {
            if (kept == maxChars)
            {
                escaped.Append("…[cut]");
                break;
            }

            kept++;
            switch (Rune.GetUnicodeCategory(rune))
            {
                case System.Globalization.UnicodeCategory.Control:
                case System.Globalization.UnicodeCategory.Format:
                case System.Globalization.UnicodeCategory.LineSeparator:
                case System.Globalization.UnicodeCategory.ParagraphSeparator:
                case System.Globalization.UnicodeCategory.PrivateUse:
                case System.Globalization.UnicodeCategory.OtherNotAssigned:
                case System.Globalization.UnicodeCategory.Surrogate:
                    escaped.Append(rune.Value <= 0xFFFF ? $"\\u{rune.Value:x4}" : $"\\U{rune.Value:x8}");
                    break;
                default:
                    if (rune.Value == '\\')
                    {
                        escaped.Append("\\\\");
                    }
                    else
                    {
                        escaped.Append(rune.ToString());
                    }

                    break;
            }
        }

        return escaped.ToString();
    }
}
