using System.Globalization;

namespace Vmm.Ram.Tests;

/// <summary>
/// Copying into untouched anonymous memory: the content arrives, and each page costs this thread one page fault,
/// not two (a read fault that maps the shared zero page, then a copy-on-write fault with a TLB flush).
/// </summary>
public class FreshPageCopyTests
{
    private const int Pages = 256;

    [Fact]
    public void EachUntouchedPageCostsOneFault()
    {
        using RamBlock block = RamBlock.Create(new RamBlockSpec("fresh.ram", 0, Pages * 4096));
        byte[] source = new byte[Pages * 4096];
        new Random(3).NextBytes(source);

        // Faults are counted per thread: run where nothing else of this process faults meanwhile.
        long faults = 0;
        var copier = new Thread(() =>
        {
            long before = MinorFaultsOfThisThread();
            // Page by page, as single-page records arrive (the read happens at the start of each copy).
            for (int page = 0; page < Pages; page++)
            {
                FreshPageCopy.Copy(source.AsSpan(page * 4096, 4096), block.GetSpan((ulong)page * 4096, 4096));
            }

            faults = MinorFaultsOfThisThread() - before;
        });
        copier.Start();
        copier.Join();

        Assert.Equal(source, block.GetSpan(0, source.Length).ToArray());

        // A few faults of the thread's own (stack, runtime) are fine; a second fault per page is not.
        Assert.InRange(faults, Pages, Pages + (Pages / 8));
    }

    [Fact]
    public void ARangeShorterThanThePageIsCopiedAndTheRestLeftAlone()
    {
        using RamBlock block = RamBlock.Create(new RamBlockSpec("fresh.ram", 0, 4 * 4096));
        byte[] source = [1, 2, 3, 4, 5];
        FreshPageCopy.Copy(source, block.GetSpan(4096, 4096));
        Assert.Equal(source, block.GetSpan(4096, 5).ToArray());
        Assert.False(block.GetSpan(4096 + 5, 4096 - 5).ContainsAnyExcept((byte)0));
        Assert.Throws<ArgumentException>(() => FreshPageCopy.Copy(new byte[8], new byte[4]));
    }

    /// <summary>minflt, the 10th field of /proc/thread-self/stat (after the parenthesised command name).</summary>
    private static long MinorFaultsOfThisThread()
    {
        string stat = File.ReadAllText("/proc/thread-self/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], CultureInfo.InvariantCulture);
    }
}
