using Vmm.Linux;

namespace Vmm.Ram.Tests;

/// <summary>
/// Touches memory from its own thread, so the test thread can watch it block in a userfaultfd fault and resolve it.
/// The thread is a background thread: if a test fails before resolving the fault, the process can still exit.
/// </summary>
internal sealed unsafe class Toucher
{
    private readonly ManualResetEventSlim done = new();
    private readonly Func<ulong> access;
    private int threadId;
    private ulong value;
    private Exception? error;

    private Toucher(Func<ulong> access)
    {
        this.access = access;
        var thread = new Thread(Run) { IsBackground = true, Name = "toucher" };
        thread.Start();
    }

    /// <summary>The toucher's kernel thread id, as userfaultfd reports it with THREAD_ID.</summary>
    public int ThreadId => Volatile.Read(ref threadId);

    public bool IsDone => done.IsSet;

    public static Toucher Read(nint address) => new(() => *(ulong*)address);

    public static Toucher Write(nint address, ulong newValue) => new(() =>
    {
        *(ulong*)address = newValue;
        return newValue;
    });

    /// <summary>Any access, e.g. a system call that makes the kernel touch the page on our behalf.</summary>
    public static Toucher Run(Func<ulong> action) => new(action);

    /// <summary>Waits for the access to finish and returns what it read; fails the test if it does not finish in time.</summary>
    public ulong Result(TimeSpan timeout)
    {
        Assert.True(done.Wait(timeout), $"the toucher is still blocked after {timeout.TotalSeconds} s");
        if (error is not null)
        {
            throw new InvalidOperationException("the toucher failed", error);
        }

        return value;
    }

    private void Run()
    {
        Volatile.Write(ref threadId, Unistd.GetTid());
        try
        {
            value = access();
        }
        catch (Exception e)
        {
            error = e;
        }
        finally
        {
            done.Set();
        }
    }
}
