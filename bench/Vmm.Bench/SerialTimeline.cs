using System.Diagnostics;
using Vmm.Devices;

namespace Vmm.Bench;

/// <summary>
/// What a benchmark guest printed and when each byte arrived: guest progress, counted on the serial line the same
/// way for the VMM (its COM1 sink) and for QEMU (its stdout), so neither engine's figure depends on the other's
/// internals.
/// </summary>
internal sealed class SerialTimeline : ISerialSink
{
    private readonly object gate = new();
    private readonly List<(byte Value, long Timestamp)> bytes = [];

    public void Write(ReadOnlySpan<byte> data)
    {
        long now = Stopwatch.GetTimestamp();
        lock (gate)
        {
            foreach (byte b in data)
            {
                bytes.Add((b, now));
            }
        }
    }

    public string Text
    {
        get
        {
            lock (gate)
            {
                return new string(bytes.Select(b => (char)b.Value).ToArray());
            }
        }
    }

    /// <summary>Arrival times of every occurrence of <paramref name="value"/>, in order.</summary>
    public long[] TimesOf(byte value)
    {
        lock (gate)
        {
            return bytes.Where(b => b.Value == value).Select(b => b.Timestamp).ToArray();
        }
    }

    /// <summary>Arrival time of the first byte of the first occurrence of <paramref name="text"/>, if it was printed.</summary>
    public long? TimeOf(string text)
    {
        lock (gate)
        {
            for (int i = 0; i + text.Length <= bytes.Count; i++)
            {
                int matched = 0;
                while (matched < text.Length && bytes[i + matched].Value == text[matched])
                {
                    matched++;
                }

                if (matched == text.Length)
                {
                    return bytes[i].Timestamp;
                }
            }

            return null;
        }
    }

    /// <summary>
    /// Marks per second over the marks printed after <paramref name="warmUp"/> from the first one (the engine's code
    /// is compiled and its memory touched by then), or NaN with fewer than two such marks.
    /// </summary>
    public double MarkRate(byte mark, TimeSpan warmUp)
    {
        long[] times = TimesOf(mark);
        if (times.Length == 0)
        {
            return double.NaN;
        }

        long from = times[0] + (long)(warmUp.TotalSeconds * Stopwatch.Frequency);
        long[] counted = times.Where(t => t >= from).ToArray();
        if (counted.Length < 2)
        {
            return double.NaN;
        }

        return (counted.Length - 1) / Stopwatch.GetElapsedTime(counted[0], counted[^1]).TotalSeconds;
    }
}
