using System.Diagnostics;
using Serilog;
using Vmm.Ram;

namespace Vmm.Migration.Postcopy;

/// <summary>
/// The postcopy fault path: a dedicated thread reads userfaultfd faults (the vCPU that touched a missing page is
/// blocked inside KVM_RUN meanwhile) and either resolves them locally (a received zero page; with MINOR faults a
/// received page whose mapping is missing) or requests the page
/// from the source on the return path. Wake-ups across the two nested CPUs cost more than the work (DESIGN §6:
/// ~145 µs sleeping in poll vs ~37 µs busy-polling), so after any fault it busy-polls for a while before it sleeps.
/// </summary>
public sealed class PostcopyFaultThread : IDisposable
{
    /// <summary>How long to keep spinning after the last fault before sleeping in poll(2).</summary>
    public static readonly TimeSpan BusyPollWindow = TimeSpan.FromMilliseconds(20);

    private readonly PostcopyDestination destination;
    private readonly Userfaultfd uffd;
    private readonly ILogger log;
    private readonly Thread thread;
    private volatile bool stopping;

    public PostcopyFaultThread(PostcopyDestination destination, Userfaultfd uffd, ILogger log)
    {
        this.destination = destination;
        this.uffd = uffd;
        this.log = log;
        thread = new Thread(Run) { IsBackground = true, Name = "postcopy faults" };
        thread.Start();
    }

    private void Run()
    {
        var batch = new UserfaultfdEvent[64];
        TimeSpan busyPoll = TimeSpan.Zero;
        try
        {
            while (!stopping)
            {
                int count = uffd.ReadFaults(batch, TimeSpan.FromMilliseconds(100), busyPoll);
                if (count == 0)
                {
                    busyPoll = TimeSpan.Zero;
                    continue;
                }

                busyPoll = BusyPollWindow;
                long now = Stopwatch.GetTimestamp();
                for (int i = 0; i < count; i++)
                {
                    if (batch[i].Kind == UserfaultfdEventKind.Pagefault)
                    {
                        Handle(batch[i].Address, (batch[i].Flags & UserfaultfdFaultFlags.Minor) != 0, now);
                    }
                }
            }
        }
        catch (Exception e) when (!stopping)
        {
            log.Error("postcopy fault thread failed: {Message}", e.Message);
        }
    }

    private void Handle(nint address, bool minor, long timestamp)
    {
        if (!destination.TryLocate(address, out int block, out ulong page))
        {
            log.Warning("postcopy: fault at 0x{Address:x} outside guest RAM", address);
            return;
        }

        if (!destination.TryResolveLocally(block, page, minor, timestamp))
        {
            destination.Request(block, page, timestamp);
        }
    }

    public void Dispose()
    {
        stopping = true;
        if (Environment.CurrentManagedThreadId != thread.ManagedThreadId)
        {
            thread.Join(TimeSpan.FromSeconds(5));
        }
    }
}
