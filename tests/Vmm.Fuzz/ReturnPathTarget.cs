using Vmm.Migration;
using Vmm.Migration.Source;
using Vmm.Migration.Stream;

namespace Vmm.Fuzz;

/// <summary>
/// The source's return path, fed one input as the bytes a destination sends: the real <see cref="ReturnPath"/> reader,
/// then every message it queued handed to the migration thread's handling. The reader must end on a
/// <see cref="MigrationStreamException"/> (it swallows everything into a closed path, so the harness checks the type),
/// and the handling may only fail the migration.
/// </summary>
internal static class ReturnPathTarget
{
    public static void Run(System.IO.Stream input)
    {
        using var returnPath = new ReturnPath(new RecordReader(input), () => { });
        if (!returnPath.Arrived.Wait(TimeSpan.FromSeconds(5)))
        {
            throw new TimeoutException("the return path reader queued nothing, not even its end");
        }

        SpinWait.SpinUntil(() => returnPath.ClosedBy is not null, TimeSpan.FromSeconds(5));
        if (returnPath.ClosedBy is not MigrationStreamException)
        {
            throw new InvalidOperationException($"the return path reader ended on {returnPath.ClosedBy?.GetType().Name ?? "nothing"}", returnPath.ClosedBy);
        }

        while (returnPath.TryTake(out ReturnMessage message))
        {
            try
            {
                ReturnPath.Fail(message);
            }
            catch (MigrationFailedException)
            {
                // What the migration thread does with a message it did not expect.
            }
        }
    }
}
