using Vmm.Migration;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Source;
using Vmm.Migration.Stream;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// PostcopyRunning on the return path: the destination says when it released its vCPUs and on which boot of which
/// host; the source reads it, and an empty record (an older peer) still counts as running, without a time. And
/// PostcopyAdviseAccepted: the destination's offer of a preempt channel and its token.
/// </summary>
public sealed class ReturnPathTests
{
    private static readonly byte[] Token = Guid.NewGuid().ToByteArray();

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

    [Fact]
    public void TheSourceReadsTheOfferFromAdviseAccepted()
    {
        using ReturnPath offered = Read(writer => new ReturnPathWriter(writer).SendAdviseAccepted(Token));
        offered.Expect(RecordType.PostcopyAdviseAccepted, TimeSpan.FromSeconds(10), () => false);
        Assert.Equal(Token, offered.PreemptToken);

        // An older destination's empty record, and a destination that declines: no channel.
        using ReturnPath empty = Read(writer => writer.Write(RecordType.PostcopyAdviseAccepted, []));
        empty.Expect(RecordType.PostcopyAdviseAccepted, TimeSpan.FromSeconds(10), () => false);
        Assert.Null(empty.PreemptToken);
        using ReturnPath declined = Read(writer => new ReturnPathWriter(writer).SendAdviseAccepted(null));
        declined.Expect(RecordType.PostcopyAdviseAccepted, TimeSpan.FromSeconds(10), () => false);
        Assert.Null(declined.PreemptToken);

        // A flag this version does not know fails the migration.
        using ReturnPath unknown = Read(writer =>
        {
            var payload = writer.Begin(RecordType.PostcopyAdviseAccepted);
            payload.U32(0x80);
            payload.Commit();
        });
        var failure = Assert.Throws<MigrationFailedException>(() => unknown.Expect(RecordType.PostcopyAdviseAccepted, TimeSpan.FromSeconds(10), () => false));
        Assert.Contains("flags 0x80", failure.Message);
    }

    /// <summary>
    /// Issue 18: the destination's Error message reaches error-desc, logs and the migrate verb's stderr: escaped (no
    /// terminal control, no forged lines) and cut, however long and whatever it holds.
    /// </summary>
    [Fact]
    public void AnErrorMessageIsEscapedAndCut()
    {
        string hostile = "bad\n\u001b]0;owned\u0007\r\nvmm: error: forged" + new string('z', 3000);
        using ReturnPath returnPath = Read(writer => new ReturnPathWriter(writer).SendError(hostile));
        var failure = Assert.Throws<MigrationFailedException>(() => returnPath.Expect(RecordType.Complete, TimeSpan.FromSeconds(10), () => false));
        Assert.StartsWith(@"the destination failed: bad\u000a\u001b]0;owned\u0007\u000d\u000avmm: error: forged", failure.Message);
        Assert.DoesNotContain('\n', failure.Message);
        Assert.DoesNotContain('\u001b', failure.Message);
        Assert.EndsWith("…[cut]", failure.Message);
        Assert.True(failure.Message.Length < 500, $"{failure.Message.Length} characters");
    }

    /// <summary>Issue 18: a destination that floods the return path is cut off at <see cref="ReturnPath.MaxQueued"/> messages.</summary>
    [Fact]
    public void TheQueueIsBounded()
    {
        bool aborted = false;
        var stream = new MemoryStream();
        var writer = new RecordWriter(stream);
        for (int i = 0; i < ReturnPath.MaxQueued + 10; i++)
        {
            writer.Write(RecordType.PostcopyRunning, []);
        }

        writer.Flush();
        stream.Position = 0;
        using var returnPath = new ReturnPath(new RecordReader(stream), () => aborted = true);
        Wait.Until(() => returnPath.ClosedReason is not null, "the reader never stopped");
        Assert.Contains($"more than {ReturnPath.MaxQueued} return-path records", returnPath.ClosedReason);
        Assert.True(aborted);
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
