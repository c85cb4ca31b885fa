namespace Vmm.Tests.Infrastructure;

/// <summary>Bounded polling for a condition (sleeping between checks, so a spinning test never stalls the GC).</summary>
public static class Wait
{
    public static void Until(Func<bool> condition, string failure, int seconds = 60)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            Thread.Sleep(1);
        }
    }
}
