using Vmm.Ram;

namespace Vmm.Configuration;

/// <summary>
/// One extra RAM block from --ram-block name=NAME,gpa=ADDR,size=SIZE[,max=SIZE][,backend=B], parsed and checked.
/// </summary>
public sealed record RamBlockOption(string Name, ulong GuestBase, ulong Size, ulong MaxSize, RamBackend Backend)
{
    public static bool TryParseBackend(string? text, out RamBackend backend)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "anonymous":
            case "anon":
                backend = RamBackend.Anonymous;
                return true;
            case "shared":
            case "memfd":
                backend = RamBackend.Shared;
                return true;
            case "hugetlbfs":
            case "hugetlb":
                backend = RamBackend.Hugetlbfs;
                return true;
            default:
                backend = RamBackend.Anonymous;
                return false;
        }
    }

    /// <summary>Parses one --ram-block value; problems are appended with the option's text so the user sees which one.</summary>
    public static RamBlockOption? Parse(string text, RamBackend defaultBackend, List<string> problems)
    {
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int equals = part.IndexOf('=');
            if (equals <= 0 || !fields.TryAdd(part[..equals], part[(equals + 1)..]))
            {
                problems.Add($"ram-block '{text}': '{part}' is not a single key=value");
                return null;
            }
        }

        string[] known = ["name", "gpa", "size", "max", "backend"];
        foreach (string key in fields.Keys.Where(k => !known.Contains(k, StringComparer.OrdinalIgnoreCase)))
        {
            problems.Add($"ram-block '{text}': unknown key '{key}' (known: {string.Join(", ", known)})");
        }

        int before = problems.Count;
        string name = fields.GetValueOrDefault("name") ?? string.Empty;
        if (name.Length == 0 || name.Length > 255 || name.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            problems.Add($"ram-block '{text}': name= is required (no spaces, at most 255 characters)");
        }

        if (!SizeParser.TryParseNumber(fields.GetValueOrDefault("gpa"), out ulong gpa))
        {
            problems.Add($"ram-block '{text}': gpa= must be a guest physical address (e.g. gpa=0x40000000)");
        }

        if (!SizeParser.TryParseSize(fields.GetValueOrDefault("size"), out ulong size) || size == 0)
        {
            problems.Add($"ram-block '{text}': size= must be a non-zero size (e.g. size=64M)");
        }

        ulong max = size;
        if (fields.TryGetValue("max", out string? maxText) && (!SizeParser.TryParseSize(maxText, out max) || max < size))
        {
            problems.Add($"ram-block '{text}': max= must be a size at least as large as size=");
        }

        RamBackend backend = defaultBackend;
        if (fields.TryGetValue("backend", out string? backendText) && !TryParseBackend(backendText, out backend))
        {
            problems.Add($"ram-block '{text}': backend= must be anonymous, shared or hugetlbfs");
        }

        if (problems.Count > before)
        {
            return null;
        }

        ulong alignment = backend == RamBackend.Hugetlbfs ? 2ul << 20 : 4096;
        if (gpa % alignment != 0 || size % alignment != 0 || max % alignment != 0)
        {
            problems.Add($"ram-block '{text}': gpa, size and max must be multiples of {SizeParser.Format(alignment)} for the {backend.ToString().ToLowerInvariant()} backend");
            return null;
        }

        if (gpa + max > 1ul << 40)
        {
            problems.Add($"ram-block '{text}': the block must end below 1 TiB of guest physical address space");
            return null;
        }

        return new RamBlockOption(name, gpa, size, max, backend);
    }
}
