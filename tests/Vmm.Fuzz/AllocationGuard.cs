namespace Vmm.Fuzz;

/// <summary>
/// "No unbounded allocation": an input of at most 4 MiB may make the migration allocate a few fixed buffers (the
/// reader's 2 MiB, the writer's 3 MiB, bitmaps of the fake machine's 2.25 MiB of RAM), never an amount the peer picks.
/// More than <see cref="Limit"/> allocated by all threads while one input runs is a crash afl saves. (A GC heap hard
/// limit would say the same, but slows every execution fifty-fold.)
/// </summary>
internal static class AllocationGuard
{
    public const long Limit = 128L << 20;

    public static void Run(Action<Stream> target, Stream input)
    {
        long before = GC.GetTotalAllocatedBytes(precise: false);
        target(input);
        long allocated = GC.GetTotalAllocatedBytes(precise: false) - before;
        if (allocated > Limit)
        {
            throw new InvalidOperationException($"one input made the migration allocate {allocated >> 20} MiB (limit {Limit >> 20} MiB)");
        }
    }
}
