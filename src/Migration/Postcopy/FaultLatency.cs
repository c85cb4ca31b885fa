using System.Diagnostics;

namespace Vmm.Migration.Postcopy;

/// <summary>
/// How long each faulting vCPU waited, from the fault thread reading the fault to the page being placed: samples in
/// a preallocated array (the fault path must not allocate), with p50 / p99 / max and the total (vCPU block time).
/// </summary>
public sealed class FaultLatency
{
    private readonly long[] samples;
    private int count;
    private long totalTicks;
    private long maxTicks;

    public FaultLatency(int capacity = 1 << 20) => samples = new long[capacity];

    public int Count => Volatile.Read(ref count);

    public void Record(long ticks)
    {
        int index = Interlocked.Increment(ref count) - 1;
        if (index < samples.Length)
        {
            samples[index] = ticks;
        }

        Interlocked.Add(ref totalTicks, ticks);
        long max;
        while (ticks > (max = Volatile.Read(ref maxTicks)) && Interlocked.CompareExchange(ref maxTicks, ticks, max) != max)
        {
        }
    }

    public double TotalMilliseconds => Volatile.Read(ref totalTicks) * 1000.0 / Stopwatch.Frequency;

    public double MaxMicroseconds => Volatile.Read(ref maxTicks) * 1e6 / Stopwatch.Frequency;

    /// <summary>The <paramref name="quantile"/> (0..1) of recorded latencies in microseconds; 0 with no samples.</summary>
    public double PercentileMicroseconds(double quantile)
    {
        int n = Math.Min(Count, samples.Length);
        if (n == 0)
        {
            return 0;
        }

        long[] sorted = samples[..n];
        Array.Sort(sorted);
        int index = Math.Clamp((int)Math.Ceiling(quantile * n) - 1, 0, n - 1);
        return sorted[index] * 1e6 / Stopwatch.Frequency;
    }
}
