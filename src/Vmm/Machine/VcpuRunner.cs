using System.Diagnostics;
using Serilog;
using Vmm.Accelerator;
using Vmm.Diagnostics;
using Vmm.Linux;

namespace Vmm.Machine;

/// <summary>
/// One vCPU on its own OS thread, whatever the accelerator: the run loop, acting on exits (power off, crash, trace),
/// and pause / resume / stop from any other thread. The park / kick protocol is written once here; the accelerator
/// supplies only <see cref="IVcpu.Kick"/> (KVM: immediate_exit plus a signal; the software CPU: a flag it polls).
/// </summary>
public sealed class VcpuRunner : IDisposable
{
    private readonly IVcpu vcpu;
    private readonly CrashReporter crashReporter;
    private readonly Action<MachineExit> onMachineExit;
    private readonly ILogger log;
    private readonly Thread thread;
    private readonly object gate = new();
    private readonly ManualResetEventSlim started = new();

    // Read without the lock at the top of every iteration; everything else about control state is under `gate`.
    private volatile bool controlPending;
    private bool pauseRequested;
    private bool paused;
    private bool stopRequested;
    private bool exited;
    private bool threadStarted;
    private int threadId;
    private long runningSince;

    // HLT with IF=1: the vCPU sleeps on `gate` until the interrupt line rises or a control request comes.
    private bool halted;
    private IInterruptSource? interrupts;

    /// <summary>How long a caller waiting for the vCPU thread to run again polls before it sleeps (see <see cref="WaitUntilRunning"/>).</summary>
    private static readonly TimeSpan SpinWindow = TimeSpan.FromMilliseconds(0.5);

    /// <summary>How long a caller polls without yielding the CPU (see <see cref="SpinUntil"/>); all <see cref="Pause"/> polls.</summary>
    private static readonly TimeSpan BusySpinWindow = TimeSpan.FromMilliseconds(0.1);

    public VcpuRunner(IVcpu vcpu, CrashReporter crashReporter, Action<MachineExit> onMachineExit, ILogger log)
    {
        this.vcpu = vcpu;
        this.crashReporter = crashReporter;
        this.onMachineExit = onMachineExit;
        this.log = log;
        thread = new Thread(Loop) { IsBackground = true, Name = $"vcpu{vcpu.Id}" };
    }

    public IVcpu Vcpu => vcpu;

    /// <summary>Wires the interrupt controller's output to this vCPU (before <see cref="Start"/>).</summary>
    public void ConnectInterrupts(IInterruptSource source)
    {
        interrupts = source;
        vcpu.ConnectInterrupts(source);
    }

    /// <summary>
    /// The vCPU's state was replaced while it was parked (a reset, an incoming migration): whatever HLT it was
    /// sleeping in is gone, so it runs again instead of waiting for an interrupt.
    /// </summary>
    public void ForgetHalt()
    {
        lock (gate)
        {
            halted = false;
        }
    }

    /// <summary>
    /// Any thread, when the interrupt line has just been raised: wakes the vCPU if it sleeps in HLT, and kicks it out
    /// of guest code so that it takes the interrupt (KVM injects only between runs).
    /// </summary>
    public void InterruptRaised()
    {
        lock (gate)
        {
            Monitor.PulseAll(gate);
        }

        vcpu.Kick();
    }

    /// <summary>The vCPU thread's kernel thread id (0 before it starts), as QMP query-cpus-fast reports it.</summary>
    public int ThreadId => Volatile.Read(ref threadId);

    /// <summary>Single-steps and prints every instruction when set before <see cref="Start"/>.</summary>
    public InstructionTracer? Tracer { get; set; }

    /// <summary>Number of exits handled, for diagnostics and benchmarks.</summary>
    public long ExitCount { get; private set; }

    public bool IsPaused
    {
        get
        {
            lock (gate)
            {
                return paused;
            }
        }
    }

    public bool HasExited
    {
        get
        {
            lock (gate)
            {
                return exited;
            }
        }
    }

    /// <summary>
    /// Starts the thread parked before it runs guest code, so that a later <see cref="Start"/> only has to release it:
    /// a migration destination does this while pages arrive, because creating a thread takes milliseconds here and
    /// must not fall into the downtime. Does nothing if the thread has started.
    /// </summary>
    public void Prestart()
    {
        lock (gate)
        {
            if (threadStarted)
            {
                return;
            }
        }

        Start(paused: true);
    }

    /// <summary>Starts the thread (or releases a prestarted one). With <paramref name="paused"/> the vCPU parks before it runs guest code.</summary>
    public void Start(bool paused = false)
    {
        lock (gate)
        {
            if (threadStarted)
            {
                // Prestarted and parked: the state it is told now is the start.
                pauseRequested = paused;
                controlPending = paused || stopRequested;
                Monitor.PulseAll(gate);
                return;
            }
        }

        if (paused)
        {
            lock (gate)
            {
                pauseRequested = true;
                controlPending = true;
            }
        }

        lock (gate)
        {
            threadStarted = true;
        }

        thread.Start();
        started.Wait();
    }

    /// <summary>Stops the vCPU outside guest code and waits until it is parked. Safe from any thread but the vCPU's own.</summary>
    public void Pause()
    {
        ThrowIfOnVcpuThread();
        lock (gate)
        {
            // A vCPU that never started, or has ended, runs no guest code: it is already as parked as it gets.
            if (exited || !threadStarted)
            {
                return;
            }

            pauseRequested = true;
            controlPending = true;
            Monitor.PulseAll(gate);
        }

        Kick();

        // A running vCPU parks within microseconds of the kick (measured: 2–10 µs). Sleeping on the lock at once would
        // mean being woken from the other CPU, which on this nested host now and then takes milliseconds (DESIGN §6),
        // and a migration's stop is downtime: so poll busily first. Past that window the vCPU thread is not running,
        // but waiting for a CPU: sleeping then lets this one go idle and take it, where yielding kept this CPU busy
        // and the vCPU waiting. Measured under load (precopy bench, 68 stops per invocation, four each): the 90th
        // percentile of a stop was 0.14–1.4 ms this way, 0.36–3.6 ms yielding until SpinWindow ran out.
        SpinUntil(() => Volatile.Read(ref paused) || Volatile.Read(ref exited), BusySpinWindow);
        lock (gate)
        {
            while (!paused && !exited)
            {
                Monitor.Wait(gate);
            }
        }
    }

    /// <summary>
    /// Stopwatch timestamp at which the vCPU thread last left its park to run guest code (0 before): when a started
    /// or resumed guest really runs again, which can be a wake-up later than the call that released it.
    /// </summary>
    public long RunningSince => Volatile.Read(ref runningSince);

    /// <summary>
    /// Waits (spinning briefly, then sleeping) until the vCPU thread has left its park after <paramref name="since"/>;
    /// false if it did not within <paramref name="timeout"/> or has ended.
    /// </summary>
    public bool WaitUntilRunning(long since, TimeSpan timeout)
    {
        SpinUntil(() => RunningSince > since || Volatile.Read(ref exited));
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        lock (gate)
        {
            // The vCPU thread pulses the lock when it leaves its park.
            while (runningSince <= since && !exited)
            {
                TimeSpan left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                if (left <= TimeSpan.Zero || !Monitor.Wait(gate, left))
                {
                    break;
                }
            }

            return runningSince > since;
        }
    }

    /// <summary>
    /// Polls for at most <see cref="SpinWindow"/> until <paramref name="condition"/> holds (read without the lock):
    /// first busily for <see cref="BusySpinWindow"/>, then yielding between checks.
    /// </summary>
    /// <remarks>
    /// A vCPU thread that is running parks (or starts) within microseconds, and a busy poll sees it at once. Yielding
    /// from the start cost far more: sched_yield hands this CPU to any other runnable thread (the destination's
    /// receiver, the JIT's background thread), and this thread got it back only when that one's slice ended, half a
    /// millisecond to 3.5 ms later, measured here inside a migration's downtime, with the vCPU parked 10 µs after the
    /// kick. After the busy window, yielding matters: the thread waited for may have been woken onto this very CPU,
    /// and a busy poll would keep it from running.
    /// </remarks>
    private static void SpinUntil(Func<bool> condition, TimeSpan? window = null)
    {
        long start = Stopwatch.GetTimestamp();
        long busyUntil = start + (long)(BusySpinWindow.TotalSeconds * Stopwatch.Frequency);
        long deadline = start + (long)((window ?? SpinWindow).TotalSeconds * Stopwatch.Frequency);
        while (!condition())
        {
            long now = Stopwatch.GetTimestamp();
            if (now >= deadline)
            {
                return;
            }

            if (now < busyUntil)
            {
                Thread.SpinWait(20);
            }
            else
            {
                Thread.Yield();
            }
        }
    }

    public void Resume()
    {
        lock (gate)
        {
            if (!threadStarted)
            {
                return;
            }

            pauseRequested = false;
            controlPending = stopRequested;
            Monitor.PulseAll(gate);
        }
    }

    /// <summary>Asks the vCPU to leave its loop; does not wait (callable from the vCPU thread itself).</summary>
    public void RequestStop()
    {
        lock (gate)
        {
            stopRequested = true;
            controlPending = true;
            Monitor.PulseAll(gate);
        }

        if (Environment.CurrentManagedThreadId != thread.ManagedThreadId)
        {
            Kick();
        }
    }

    /// <summary>Forces the vCPU out of guest code (or makes its next entry return at once).</summary>
    private void Kick() => vcpu.Kick();

    private void ThrowIfOnVcpuThread()
    {
        if (Environment.CurrentManagedThreadId == thread.ManagedThreadId)
        {
            throw new InvalidOperationException("a vCPU cannot pause itself");
        }
    }

    private void Loop()
    {
        try
        {
            vcpu.AttachThread();
            Volatile.Write(ref threadId, Unistd.GetTid());
        }
        catch (Exception e)
        {
            Finish(MachineExit.HostError($"vCPU {vcpu.Id} setup failed: {e.Message}"));
            started.Set();
            return;
        }

        started.Set();
        try
        {
            if (Tracer is { } tracer && tracer.Trace(vcpu))
            {
                Finish(MachineExit.PowerOff());
                return;
            }

            RunLoop();
        }
        catch (Exception e)
        {
            Finish(MachineExit.HostError($"vCPU {vcpu.Id} failed: {e.Message}"));
        }
        finally
        {
            lock (gate)
            {
                exited = true;
                paused = false;
                Monitor.PulseAll(gate);
            }
        }
    }

    private void RunLoop()
    {
        while (true)
        {
            if (controlPending && !ParkWhileControlled())
            {
                return;
            }

            if (halted && !WaitForInterrupt())
            {
                continue;
            }

            VcpuExit exit = vcpu.Run();
            ExitCount++;
            if (!HandleExit(exit))
            {
                return;
            }
        }
    }

    /// <summary>
    /// Sleeps while the vCPU is halted with interrupts enabled, until the interrupt line rises (true: run and take
    /// it) or a control request arrives (false: handle it first; the vCPU stays halted). No polling: the PIC's
    /// output and every control request pulse the lock.
    /// </summary>
    private bool WaitForInterrupt()
    {
        lock (gate)
        {
            while (!controlPending && interrupts?.InterruptPending != true)
            {
                Monitor.Wait(gate);
            }

            if (controlPending)
            {
                return false;
            }
        }

        halted = false;
        return true;
    }

    /// <summary>Handles pause and stop requests. Returns false when the loop must end.</summary>
    private bool ParkWhileControlled()
    {
        // Whole instructions only: what others read or set while the vCPU is parked is between two of them.
        while (vcpu.CompletePendingExit() is { } pending)
        {
            ExitCount++;
            if (!HandleExit(pending))
            {
                return false;
            }
        }

        lock (gate)
        {
            vcpu.AcknowledgeKick();
            if (pauseRequested && !stopRequested)
            {
                paused = true;
                Monitor.PulseAll(gate);
                while (pauseRequested && !stopRequested)
                {
                    Monitor.Wait(gate);
                }

                paused = false;
                Volatile.Write(ref runningSince, Stopwatch.GetTimestamp());
                Monitor.PulseAll(gate);
            }

            return !stopRequested;
        }
    }

    /// <summary>Acts on one exit. Returns false when the machine must stop.</summary>
    private bool HandleExit(VcpuExit exit)
    {
        switch (exit.Kind)
        {
            case VcpuExitKind.Io:
            case VcpuExitKind.Interrupted:
                return true;

            case VcpuExitKind.Halt:
                if (!exit.InterruptsEnabled)
                {
                    Finish(MachineExit.PowerOff());
                    return false;
                }

                // The guest waits for an interrupt: sleep until the PIC raises its output (RunLoop).
                halted = true;
                return true;

            case VcpuExitKind.Debug:
                if (Tracer?.Trace(vcpu) == true)
                {
                    Finish(MachineExit.PowerOff());
                    return false;
                }

                return true;

            case VcpuExitKind.SystemEvent:
                Finish(MachineExit.PowerOff(exit.Detail ?? "guest requested a system event"));
                return false;

            case VcpuExitKind.HostError:
                Finish(MachineExit.HostError(exit.Detail ?? $"vCPU {vcpu.Id} failed"));
                return false;

            default:
                Finish(MachineExit.Crashed(crashReporter.Report(vcpu, exit.Detail ?? $"vCPU {vcpu.Id} stopped: {exit.Kind}")));
                return false;
        }
    }

    private void Finish(MachineExit exit)
    {
        log.Debug("vCPU {Id} stops the machine: {Kind} ({Status})", vcpu.Id, exit.Kind, exit.Status);
        onMachineExit(exit);
    }

    public void Dispose()
    {
        RequestStop();
        if (thread.IsAlive && Environment.CurrentManagedThreadId != thread.ManagedThreadId)
        {
            thread.Join();
        }

        started.Dispose();
    }
}
