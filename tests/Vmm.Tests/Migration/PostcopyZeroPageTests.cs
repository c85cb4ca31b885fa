using Vmm.Migration;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// Zero pages after the switchover (MISSING faults): a zero run only marks its pages received and maps nothing, since
/// a page that is not mapped reads as zeros once a touch faults there and is resolved locally. What must never happen:
/// a thread already waiting on such a page is left waiting. A scripted source feeds a real destination machine.
/// </summary>
public sealed class PostcopyZeroPageTests : IDisposable
{
    /// <summary>The range <see cref="FakeSource.RunPostcopy"/> discards and the guest never touches: 256 missing pages.</summary>
    private const ulong Missing = 8 << 20;
    private const ulong MissingLength = 1 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-postcopy-zero-").FullName;

    [Fact]
    public void AZeroRunMapsNothingAndALaterTouchReadsZerosWithoutARequest()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.RunPostcopy();
        long before = source.ReturnPath.Last;
        PageRecord.WriteZeros(source.Writer, 0, Missing, 64 << 10);
        source.Writer.Flush();
        WaitUntil(() => Stats(source).RemainingBytes == MissingLength - (64 << 10), "the zero run counted as received");
        Assert.Equal(0ul, Stats(source).PostcopyFetchedPages);

        const ulong Touched = Missing + (5 * 4096);
        Assert.True(Read(source, Touched).All(b => b == 0), "a page of the zero run does not read as zeros");
        // The fault thread counts the local fault after the placement that woke this reader.
        WaitUntil(() => Stats(source).PostcopyLocalFaults >= 1, "the touch resolved locally");
        Assert.DoesNotContain(source.ReturnPath.Snapshot().Skip((int)before + 1), r => r.Type == RecordType.PageRequest && r.Offset == Touched);
    }

    [Fact]
    public void AThreadWaitingOnAPageIsWokenWhenAZeroRunBringsIt()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.RunPostcopy();
        long before = source.ReturnPath.Last;

        // A reader faults on a missing page and waits: the destination asks the source for it.
        const ulong Waited = Missing + 0x10000;
        Task<byte[]> reader = Task.Run(() => Read(source, Waited));
        source.ReturnPath.WaitFor(r => r.Type == RecordType.PageRequest && r.Offset == Waited, "the request for the page the reader waits on", before);
        Assert.False(reader.IsCompleted, "the reader did not wait for the missing page");

        // The push's zero run covers it (and completes the migration): the waiting page is mapped at once, only it.
        PageRecord.WriteZeros(source.Writer, 0, Missing, MissingLength);
        source.Writer.Flush();
        Assert.True(reader.Wait(TimeSpan.FromSeconds(10)), "the reader was never woken");
        Assert.True(reader.Result.All(b => b == 0), "the waited-on page does not read as zeros");
        source.ReturnPath.WaitFor(r => r.Type == RecordType.Complete, "Complete", before);
        Assert.Equal(1ul, Stats(source).PostcopyFetchedPages);
    }

    private static MigrationStats Stats(FakeSource source) => source.Destination.Machine.Migration.Stats!;

    private static byte[] Read(FakeSource source, ulong address)
    {
        byte[] page = new byte[4096];
        Assert.Equal(page.Length, source.Destination.Machine.Memory.Read(address, page));
        return page;
    }

    private static void WaitUntil(Func<bool> condition, string what)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            Thread.Sleep(5);
        }
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);
}
