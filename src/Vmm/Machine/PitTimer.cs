using System.Diagnostics;
using Vmm.Devices.Interrupts;

namespace Vmm.Machine;

/// <summary>
/// The thread that makes the PIT's channel 0 fire: it sleeps until <see cref="Pit8254.NextDeadline"/> and calls
/// <see cref="Pit8254.Service"/>, which raises IRQ 0. A reprogrammed PIT wakes it to look again. It idles while
/// channel 0 does not count, so a guest that never touches the PIT costs nothing.
/// </summary>
public sealed class PitTimer : IDisposable
{
    private readonly Pit8254 pit;
    private readonly Thread thread;
    private readonly object gate = new();
    private bool disposed;
    private bool changed;

    public PitTimer(Pit8254 pit)
    {
        this.pit = pit;
        pit.Reprogrammed += OnReprogrammed;
        thread = new Thread(Loop) { IsBackground = true, Name = "pit" };
        thread.Start();
    }

    /// <summary>The machine's clock: the PIT counts in these nanoseconds.</summary>
    public static long NowNs() => (long)((Int128)Stopwatch.GetTimestamp() * 1_000_000_000 / Stopwatch.Frequency);

    private void OnReprogrammed()
    {
        lock (gate)
        {
            changed = true;
            Monitor.PulseAll(gate);
        }
    }

    private void Loop()
    {
        while (true)
        {
            long? next = pit.Service();
            lock (gate)
            {
                if (disposed)
                {
                    return;
                }

                if (changed)
                {
                    changed = false;
                    continue;
                }

                if (next is not { } due)
                {
                    Monitor.Wait(gate);
                    continue;
                }

                long waitNs = due - NowNs();
                if (waitNs >= 1_000_000)
                {
                    // Rounded up: a tick up to 1 ms late costs nothing, a spin for the last fraction would.
                    Monitor.Wait(gate, TimeSpan.FromMilliseconds((waitNs + 999_999) / 1_000_000));
                    continue;
                }
            }

            // Under a millisecond (a guest programmed the PIT above 1 kHz): Monitor.Wait cannot sleep that briefly, so
            // poll, giving the CPU away between looks — the vCPU may need it.
            Thread.Yield();
        }
    }

    public void Dispose()
    {
        pit.Reprogrammed -= OnReprogrammed;
        lock (gate)
        {
            disposed = true;
            Monitor.PulseAll(gate);
        }

        thread.Join();
    }
}
