using System.Globalization;

namespace Vmm.Ram;

/// <summary>The host's pool of 2 MiB huge pages, as the kernel reports it in sysfs.</summary>
public static class HugePages
{
    public const ulong PageSize = 2 * 1024 * 1024;

    private const string PoolDirectory = "/sys/kernel/mm/hugepages/hugepages-2048kB";

    /// <summary>Whether this kernel has a 2 MiB huge page pool at all.</summary>
    public static bool IsSupported => Directory.Exists(PoolDirectory);

    /// <summary>Pages in the pool (nr_hugepages).</summary>
    public static ulong TotalPages => ReadCounter("nr_hugepages");

    /// <summary>Pages not holding data (free_hugepages). Some of them may already be promised to a mapping.</summary>
    public static ulong FreePages => ReadCounter("free_hugepages");

    /// <summary>Free pages promised to existing shared mappings but not yet faulted in (resv_hugepages).</summary>
    public static ulong ReservedPages => ReadCounter("resv_hugepages");

    /// <summary>Free pages a new mapping can still reserve: <see cref="FreePages"/> minus <see cref="ReservedPages"/>.</summary>
    public static ulong AvailablePages
    {
        get
        {
            ulong free = FreePages;
            ulong reserved = ReservedPages;
            return free > reserved ? free - reserved : 0;
        }
    }

    /// <summary>
    /// The file root writes to size the 2 MiB pool: /proc/sys/vm/nr_hugepages sizes the default huge page size's pool,
    /// which is 2 MiB on x86-64 unless the kernel was booted with another default_hugepagesz.
    /// </summary>
    public static string PoolSizeKnob => DefaultHugePageSizeKiB() == PageSize / 1024 ? "/proc/sys/vm/nr_hugepages" : Path.Combine(PoolDirectory, "nr_hugepages");

    public static ulong PagesFor(ulong bytes) => (bytes + PageSize - 1) / PageSize;

    /// <summary>
    /// Throws <see cref="RamBackendException"/> unless <paramref name="bytes"/> worth of huge pages can be reserved now.
    /// A hugetlb MAP_SHARED mapping reserves all its pages at mmap time, so this is the honest up-front check; a
    /// concurrent user can still win the race, which <see cref="Shortage"/> reports the same way.
    /// </summary>
    public static void EnsureAvailable(string blockName, ulong bytes)
    {
        if (!IsSupported)
        {
            throw new RamBackendException($"RAM block '{blockName}' wants 2 MiB huge pages, but this kernel has no 2 MiB hugetlb pool ({PoolDirectory} is missing)");
        }

        if (PagesFor(bytes) > AvailablePages)
        {
            throw Shortage(blockName, bytes);
        }
    }

    /// <summary>The user-facing error for "not enough huge pages": needed, free, and the command that fixes it.</summary>
    public static RamBackendException Shortage(string blockName, ulong bytes, Exception? cause = null)
    {
        ulong needed = PagesFor(bytes);
        ulong total = TotalPages;
        ulong free = FreePages;
        ulong available = AvailablePages;
        string promised = free == available ? string.Empty : $"{free} free, {free - available} of them promised to other mappings; ";
        string how = needed > available
            ? $"Reserve them as root with: echo {total + (needed - available)} > {PoolSizeKnob}"
            : "The pool looked large enough at the time of this report; another process or a hugetlb cgroup limit may have taken the pages";
        return new RamBackendException(
            $"RAM block '{blockName}' needs {needed} huge pages of 2 MiB ({bytes / (1024 * 1024)} MiB) but only {available} are free ({promised}pool size {total}). {how}.",
            cause);
    }

    private static ulong ReadCounter(string name)
    {
        string path = Path.Combine(PoolDirectory, name);
        try
        {
            return ulong.Parse(File.ReadAllText(path).Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RamBackendException($"cannot read the 2 MiB huge page pool counter {path}: {e.Message}", e);
        }
    }

    private static ulong DefaultHugePageSizeKiB()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("Hugepagesize:", StringComparison.Ordinal))
                {
                    return ulong.Parse(line["Hugepagesize:".Length..].Replace("kB", string.Empty, StringComparison.Ordinal).Trim(), CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }

        return 0;
    }
}
