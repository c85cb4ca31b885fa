using System.Diagnostics;
using Serilog;
using Vmm.Devices;
using Vmm.Diagnostics;
using Vmm.Kvm;
using Vmm.Linux;
using Vmm.Linux.Kvm;

namespace Vmm.Machine;

/// <summary>
/// One vCPU on its own OS thread: the KVM_RUN loop, exit dispatch to the buses, and pause / resume / stop from any
/// other thread (kick = immediate_exit + <see cref="VcpuKick.Signal"/>).
/// </summary>
public sealed unsafe class VcpuRunner : IDisposable
{
    private readonly KvmVcpu vcpu;
    private readonly PortIoBus ports;
    private readonly MmioBus mmio;
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

    /// <summary>How long a caller spins for the vCPU thread before it sleeps (see <see cref="Pause"/>).</summary>
    private static readonly TimeSpan SpinWindow = TimeSpan.FromMilliseconds(0.5);

    public VcpuRunner(KvmVcpu vcpu, PortIoBus ports, MmioBus mmio, CrashReporter crashReporter, Action<MachineExit> onMachineExit, ILogger log)
    {
        this.vcpu = vcpu;
        this.ports = ports;
        this.mmio = mmio;
        this.crashReporter = crashReporter;
        this.onMachineExit = onMachineExit;
        this.log = log;
        thread = new Thread(Loop) { IsBackground = true, Name = $"vcpu{vcpu.Id}" };
    }

    public KvmVcpu Vcpu => vcpu;

    /// <summary>The vCPU thread's kernel thread id (0 before it starts), as QMP query-cpus-fast reports it.</summary>
    public int ThreadId => Volatile.Read(ref threadId);

    /// <summary>Single-steps and prints every instruction when set before <see cref="Start"/>.</summary>
    public InstructionTracer? Tracer { get; set; }

    /// <summary>Number of KVM_RUN exits handled, for diagnostics and benchmarks.</summary>
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
    /// Starts the thread parked before its first KVM_RUN, so that a later <see cref="Start"/> only has to release it:
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

    /// <summary>Starts the thread (or releases a prestarted one). With <paramref name="paused"/> the vCPU parks before its first KVM_RUN.</summary>
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

    /// <summary>Stops the vCPU outside KVM_RUN and waits until it is parked. Safe from any thread but the vCPU's own.</summary>
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
        }

        Kick();

        // Parking takes tens of microseconds. Sleeping on the lock instead means being woken from the other CPU,
        // which on this nested host now and then takes milliseconds (DESIGN §6) — and a migration's stop is downtime.
        // So spin briefly first, then sleep.
        SpinUntil(() => Volatile.Read(ref paused) || Volatile.Read(ref exited));
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
    /// Polls for at most <see cref="SpinWindow"/> until <paramref name="condition"/> holds (read without the lock),
    /// yielding between checks: the thread waited for may have been woken onto this very CPU, and a pure spin would
    /// keep it from running for the whole window.
    /// </summary>
    private static void SpinUntil(Func<bool> condition)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(SpinWindow.TotalSeconds * Stopwatch.Frequency);
        while (!condition() && Stopwatch.GetTimestamp() < deadline)
        {
            Thread.Yield();
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

    /// <summary>Forces the vCPU out of KVM_RUN (or makes its next entry return at once).</summary>
    private void Kick()
    {
        vcpu.Run->ImmediateExit = 1;
        Thread.MemoryBarrier();
        int tid = Volatile.Read(ref threadId);
        if (tid != 0)
        {
            Signals.SendToThread(tid, VcpuKick.Signal);
        }
    }

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
            ulong previousMask = Signals.ChangeThreadMask(Signals.SIG_BLOCK, VcpuKick.Mask);
            vcpu.SetSignalMask(previousMask & ~VcpuKick.Mask);
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
            if (Tracer is { } tracer)
            {
                vcpu.SetGuestDebug(KvmGuestDebug.Enable | KvmGuestDebug.SingleStep);
                if (tracer.Trace(vcpu))
                {
                    Finish(MachineExit.PowerOff());
                    return;
                }
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
        KvmRun* run = vcpu.Run;
        while (true)
        {
            if (controlPending && !ParkWhileControlled())
            {
                return;
            }

            int errno = vcpu.RunOnce();
            if (errno != 0)
            {
                if (errno is Errno.EINTR or Errno.EAGAIN)
                {
                    run->ImmediateExit = 0;
                    Signals.TryConsumePending(VcpuKick.Signal);
                    continue;
                }

                Finish(MachineExit.HostError($"KVM_RUN failed on vCPU {vcpu.Id}: {new LinuxException("KVM_RUN", errno).Message}"));
                return;
            }

            ExitCount++;
            if (!HandleExit(run))
            {
                return;
            }
        }
    }

    /// <summary>Handles pause and stop requests. Returns false when the loop must end.</summary>
    private bool ParkWhileControlled()
    {
        if (!CompletePendingExit())
        {
            return false;
        }

        lock (gate)
        {
            vcpu.Run->ImmediateExit = 0;
            Signals.TryConsumePending(VcpuKick.Signal);
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

    /// <summary>
    /// KVM finishes an I/O or MMIO exit (stores an IN's data into the register, advances a string I/O) only on the
    /// next KVM_RUN, and that pending work is invisible in the registers userspace reads (api.rst, KVM_RUN). Before
    /// parking — so that reset, migration and the monitor see and set whole instructions — re-enter once with
    /// immediate_exit set: KVM completes the operation and returns EINTR without running guest code. Completing a
    /// string I/O may produce one more exit, which is handled like any other. False when the machine must stop.
    /// </summary>
    private bool CompletePendingExit()
    {
        KvmRun* run = vcpu.Run;
        while (true)
        {
            run->ImmediateExit = 1;
            int errno = vcpu.RunOnce();
            if (errno is Errno.EINTR or Errno.EAGAIN)
            {
                return true;
            }

            if (errno != 0)
            {
                Finish(MachineExit.HostError($"KVM_RUN failed on vCPU {vcpu.Id}: {new LinuxException("KVM_RUN", errno).Message}"));
                return false;
            }

            ExitCount++;
            if (!HandleExit(run))
            {
                return false;
            }
        }
    }

    private bool HandleExit(KvmRun* run)
    {
        switch (run->ExitReason)
        {
            case KvmExitReason.Io:
                HandleIo(run);
                return true;

            case KvmExitReason.Mmio:
                HandleMmio(run);
                return true;

            case KvmExitReason.Hlt:
                if (run->IfFlag == 0)
                {
                    Finish(MachineExit.PowerOff());
                    return false;
                }

                // No interrupt controller yet: nothing will ever wake a halted vCPU, so treat HLT with IF=1 as a
                // short idle and let the guest continue (it usually loops back to HLT).
                Thread.Sleep(1);
                return true;

            case KvmExitReason.Debug:
                if (Tracer?.Trace(vcpu) == true)
                {
                    Finish(MachineExit.PowerOff());
                    return false;
                }

                return true;

            case KvmExitReason.Intr:
                return true;

            case KvmExitReason.Shutdown:
                Finish(MachineExit.Crashed(crashReporter.Report(vcpu, "triple fault: the guest shut down (KVM_EXIT_SHUTDOWN)")));
                return false;

            case KvmExitReason.FailEntry:
                Finish(MachineExit.Crashed(crashReporter.Report(
                    vcpu, $"VM entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason 0x{run->FailEntry.HardwareEntryFailureReason:x})")));
                return false;

            case KvmExitReason.InternalError:
                Finish(MachineExit.Crashed(crashReporter.Report(
                    vcpu, $"KVM internal error (KVM_EXIT_INTERNAL_ERROR, suberror {run->Internal.Suberror})")));
                return false;

            case KvmExitReason.SystemEvent:
                Finish(MachineExit.PowerOff("guest requested a system event (shutdown/reset)"));
                return false;

            default:
                Finish(MachineExit.Crashed(crashReporter.Report(vcpu, $"unexpected KVM exit reason {(uint)run->ExitReason}")));
                return false;
        }
    }

    private void HandleIo(KvmRun* run)
    {
        KvmRunIo io = run->Io;
        byte* data = (byte*)run + io.DataOffset;
        int size = io.Size;

        // String I/O (rep ins/outs) arrives as Count items back to back.
        for (uint i = 0; i < io.Count; i++)
        {
            var item = new Span<byte>(data + (i * (uint)size), size);
            if (io.Direction == KvmRun.IoDirectionOut)
            {
                ports.Write(io.Port, item);
            }
            else
            {
                ports.Read(io.Port, item);
            }
        }
    }

    private void HandleMmio(KvmRun* run)
    {
        var data = new Span<byte>(run->Mmio.Data, (int)Math.Min(run->Mmio.Len, 8u));
        if (run->Mmio.IsWrite != 0)
        {
            mmio.Write(run->Mmio.PhysAddr, data);
        }
        else
        {
            mmio.Read(run->Mmio.PhysAddr, data);
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
