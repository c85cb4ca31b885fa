using Vmm.Migration;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Source;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// PostcopyRunning on the return path: the destination says when it released its vCPUs and on which boot of which
/// host; the source reads it, and an empty record (an older peer) still counts as running, without a time.
/// </summary>
public sealed class ReturnPathTests
{
    [Fact]
    public void RunningCarriesTheBootIdAndTheReleaseTime()
    {
        Assert.NotEqual(Guid.Empty, HostClock.BootId);
        using ReturnPath returnPath = Read(writer =>
        {
            using var destination = new ReturnPathWriter(writer);
            destination.SendRunning(123_456_789);
        });

        Assert.True(returnPath.Expect(RecordType.PostcopyRunning, TimeSpan.FromSeconds(10), () => false) is not null);
        Assert.Equal((HostClock.BootId, 123_456_789L), returnPath.DestinationRunning);
        Assert.NotEqual(0, returnPath.PostcopyRunningAt);
    }

    [Fact]
    public void AnEmptyRunningRecordHasNoTime()
    {
        using ReturnPath returnPath = Read(writer => writer.Write(RecordType.PostcopyRunning, []));
        Assert.True(returnPath.Expect(RecordType.PostcopyRunning, TimeSpan.FromSeconds(10), () => false) is not null);
        Assert.Null(returnPath.DestinationRunning);
    }

    private static ReturnPath Read(Action<RecordWriter> write)
    {
        var stream = new MemoryStream();
        var writer = new RecordWriter(stream);
        write(writer);
        writer.Flush();
        stream.Position = 0;
        return new ReturnPath(new RecordReader(stream));
    }
}
