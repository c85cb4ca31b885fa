using System.Diagnostics;
using System.Net.Sockets;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Source;
using Vmm.Migration.Stream;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// Issue 18, the source's side: a real <see cref="MigrationSource"/> migrating a running dirty guest to a fake
/// destination that floods the return path, stops reading, or asks for more than a fault can need. The source's memory
/// stays bounded, its migration fails in bounded time, and before the switchover its guest keeps (or resumes) running.
/// </summary>
public sealed class HostileDestinationTests : IDisposable
{
    private const ulong Memory = 32 << 20;

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-hostile-dst-").FullName;

    /// <summary>
    /// A destination that stops reading and streams small records: the source used to queue them all (944 MiB in 8 s).
    /// Now past <see cref="ReturnPath.MaxQueued"/> the connection is aborted, the migration fails, the guest runs on.
    /// </summary>
    [Fact]
    public void AFloodedReturnPathFailsTheMigrationInsteadOfGrowing()
    {
        using TestMachine source = StartSource(new MigrationParameters { DowntimeLimitMs = 0, MaxPasses = 1_000_000, WriteTimeout = TimeSpan.FromMinutes(5) });
        using Socket listener = Listen("flood.sock");
        MigrationSource migration = source.Machine.Migration.Migrate($"unix:{Path.Combine(dir, "flood.sock")}");
        using MigrationConnection connection = AcceptAndAcceptSetup(listener);

        // Never read again; flood.
        try
        {
            for (int i = 0; i < 20 * ReturnPath.MaxQueued; i++)
            {
                connection.Writer.Write(RecordType.PostcopyRunning, []);
            }

            connection.Writer.Flush();
        }
        catch (IOException)
        {
            // The source gave up on us: expected.
        }

        MigrationStats stats = WaitFinished(migration, TimeSpan.FromSeconds(30));
        Assert.Equal(MigrationStatus.Failed, stats.Status);
        Assert.Contains($"more than {ReturnPath.MaxQueued} return-path records", stats.ErrorDescription);
        AssertGuestRunsOn(source);
    }

    /// <summary>
    /// The destination stops reading while the source's guest is stopped for the switchover: the blocked write times
    /// out, the migration fails, and the guest runs again here within the write timeout.
    /// </summary>
    [Fact]
    public void ADestinationThatStopsReadingInTheStoppedPhaseFailsAndTheGuestResumes()
    {
        var timeout = TimeSpan.FromSeconds(2);
        using TestMachine source = StartSource(new MigrationParameters { DowntimeLimitMs = 2_000_000, WriteTimeout = timeout });

        // Whole pages: as sparse pages the switchover's 16 MiB would fit in the socket's buffer and never pile up.
        source.Machine.Migration.SetCapabilities(new MigrationCapabilities { SparsePages = false });
        using Socket listener = Listen("stall.sock");
        MigrationSource migration = source.Machine.Migration.Migrate($"unix:{Path.Combine(dir, "stall.sock")}");
        using MigrationConnection connection = AcceptAndAcceptSetup(listener);

        // Read the first pass (the guest runs), then stop reading for good: the switchover's pages pile up.
        var stopped = new ManualResetEventSlim();
        using var stream = new RecordLog(connection.Reader, "the source's main stream", onRecord: r =>
        {
            if (r.Type == RecordType.PassEnd)
            {
                stopped.Set();
                Thread.Sleep(Timeout.Infinite);
            }
        });
        Assert.True(stopped.Wait(TimeSpan.FromSeconds(60)), "no first pass");
        var clock = Stopwatch.StartNew();
        MigrationStats stats = WaitFinished(migration, TimeSpan.FromSeconds(60));
        Assert.Equal(MigrationStatus.Failed, stats.Status);
        Assert.Contains("the destination stopped reading", stats.ErrorDescription);
        Assert.InRange(clock.Elapsed.TotalSeconds, 0, 30);
        AssertGuestRunsOn(source);
        connection.Abort();
    }

    /// <summary>
    /// Page requests that arrive before the switchover wait for it; a destination that sends thousands is refused
    /// (the migration fails with the guest still here) rather than queued without bound.
    /// </summary>
    [Fact]
    public void PageRequestsBeforeTheSwitchoverAreBounded()
    {
        using TestMachine source = StartSource(new MigrationParameters { DowntimeLimitMs = 0, MaxPasses = 1_000_000 });
        source.Machine.Migration.SetCapabilities(new MigrationCapabilities { PostcopyRam = true, PostcopyPreempt = false });
        using Socket listener = Listen("early.sock");
        MigrationSource migration = source.Machine.Migration.Migrate($"unix:{Path.Combine(dir, "early.sock")}");
        using MigrationConnection connection = AcceptAndAcceptSetup(listener);
        var returnPath = new ReturnPathWriter(connection.Writer);
        using var stream = new RecordLog(connection.Reader, "the source's main stream", onRecord: r =>
        {
            if (r.Type == RecordType.PostcopyDiscardSync)
            {
                for (int i = 0; i < 5000; i++)
                {
                    returnPath.RequestPage(0, (ulong)(i % 4096) * 4096, 4096);
                }
            }
        });
        stream.WaitFor(r => r.Type == RecordType.PostcopyAdvise, "PostcopyAdvise");
        returnPath.Send(RecordType.PostcopyAdviseAccepted);
        stream.WaitFor(r => r.Type == RecordType.PassEnd, "the first pass", seconds: 60);
        source.Machine.Migration.StartPostcopy();

        MigrationStats stats = WaitFinished(migration, TimeSpan.FromSeconds(60));
        Assert.Equal(MigrationStatus.Failed, stats.Status);
        Assert.Contains("more than 4096 page requests before the switchover", stats.ErrorDescription);
        AssertGuestRunsOn(source);
        connection.Abort();
    }

    /// <summary>
    /// One PageRequest of 31 bytes with a huge length used to make the source send the rest of the block. A request
    /// is served as the one host page it starts in.
    /// </summary>
    [Fact]
    public void AHugePageRequestIsClampedToOneHostPage()
    {
        using TestMachine source = StartSource(new MigrationParameters { DowntimeLimitMs = 0, MaxPasses = 1_000_000 });
        source.Machine.Migration.SetCapabilities(new MigrationCapabilities { PostcopyRam = true, PostcopyPreempt = false });
        using Socket listener = Listen("huge.sock");
        MigrationSource migration = source.Machine.Migration.Migrate($"unix:{Path.Combine(dir, "huge.sock")}");
        using MigrationConnection connection = AcceptAndAcceptSetup(listener);
        var returnPath = new ReturnPathWriter(connection.Writer);
        using var stream = new RecordLog(connection.Reader, "the source's main stream", onRecord: r =>
        {
            if (r.Type == RecordType.PostcopyDiscardSync)
            {
                returnPath.Send(RecordType.PostcopyDiscarded);
            }
        });
        stream.WaitFor(r => r.Type == RecordType.PostcopyAdvise, "PostcopyAdvise");
        returnPath.Send(RecordType.PostcopyAdviseAccepted);
        stream.WaitFor(r => r.Type == RecordType.PassEnd, "the first pass", seconds: 60);
        source.Machine.Migration.StartPostcopy();
        SeenRecord run = stream.WaitFor(r => r.Type == RecordType.PostcopyRun, "PostcopyRun", seconds: 60);
        returnPath.Send(RecordType.PostcopyRunning);

        // Past the guest's dirty range ([1 MiB, 17 MiB)): clean since the first pass, so the push sends nothing there
        // and every page beyond the one asked for would be part of an over-long answer.
        const ulong Offset = 24ul << 20;
        returnPath.RequestPage(0, Offset, 1ul << 40);
        SeenRecord answer = stream.WaitFor(r => r.Type == RecordType.Page && r.Offset == Offset, "the answer", after: run.Seq, seconds: 30);
        Thread.Sleep(500);
        SeenRecord[] beyond = [.. stream.Snapshot().Where(r => r.Seq > run.Seq && r.Type == RecordType.Page && r.Offset > Offset)];
        Assert.Equal(4096ul, answer.Length);
        Assert.Empty(beyond);
        connection.Abort();
        WaitFinished(migration, TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// Under TLS the source asks for no preempt channel (it would be a second, plain connection carrying guest pages),
    /// and a destination that offers one anyway is refused: the migration fails, nothing connects a second time, and
    /// the guest runs on.
    /// </summary>
    [Fact]
    public void UnderTlsAPreemptChannelIsNeitherAskedForNorTaken()
    {
        string creds = TestCertificates.Create(Path.Combine(dir, "pki"));
        using TestMachine source = StartSource(new MigrationParameters { Tls = new MigrationTls(creds, "localhost", []) });
        source.Machine.Migration.SetCapabilities(new MigrationCapabilities { PostcopyRam = true });
        Assert.True(source.Machine.Migration.Capabilities.PostcopyPreempt);
        using Socket listener = Listen("tls.sock");
        MigrationSource migration = source.Machine.Migration.Migrate($"unix:{Path.Combine(dir, "tls.sock")}");
        Assert.True(listener.Poll(TimeSpan.FromSeconds(30), SelectMode.SelectRead), "the source did not connect");
        using MigrationConnection connection = MigrationConnection.Adopt(listener.Accept(), new MigrationTls(creds, null, []));
        StreamHeader.Read(connection.InputStream);
        Assert.Equal(RecordType.Setup, connection.Reader.Read().Type);
        connection.Writer.Write(RecordType.SetupAccepted, []);
        connection.Writer.Flush();

        Vmm.Migration.Stream.Record advise = connection.Reader.Read();
        Assert.Equal(RecordType.PostcopyAdvise, advise.Type);
        uint flags = advise.Reader().U32();
        Assert.Equal(0u, flags & (PostcopyAdviseFlags.Preempt | PostcopyAdviseFlags.SharedMemory));
        Assert.Equal(RecordType.PostcopyName, connection.Reader.Read().Type);
        new ReturnPathWriter(connection.Writer).SendAdviseAccepted(Guid.NewGuid().ToByteArray());

        MigrationStats stats = WaitFinished(migration, TimeSpan.FromSeconds(30));
        Assert.Equal(MigrationStatus.Failed, stats.Status);
        Assert.Contains("protocol error: the destination offered a postcopy preempt channel that was not asked for", stats.ErrorDescription);
        Assert.False(listener.Poll(TimeSpan.FromMilliseconds(200), SelectMode.SelectRead), "the source opened a second connection");
        AssertGuestRunsOn(source);
    }

    private TestMachine StartSource(MigrationParameters parameters)
    {
        TestMachine source = TestMachine.Create(Memory, guest: "dirty-16m");
        source.Machine.Start();
        source.WaitForSerial(s => s.Contains('B'), "a pass on the source");
        source.Machine.Migration.SetParameters(parameters);
        return source;
    }

    private Socket Listen(string name) => IncomingMigration.Listen(MigrationUri.Parse($"unix:{Path.Combine(dir, name)}"));

    /// <summary>Accepts the source, reads its header and Setup, and accepts the layout.</summary>
    private static MigrationConnection AcceptAndAcceptSetup(Socket listener)
    {
        MigrationConnection connection = FakePeer.AcceptWithin(listener, TimeSpan.FromSeconds(30));
        StreamHeader.Read(connection.InputStream);
        Assert.Equal(RecordType.Setup, connection.Reader.Read().Type);
        connection.Writer.Write(RecordType.SetupAccepted, []);
        connection.Writer.Flush();
        return connection;
    }

    private static MigrationStats WaitFinished(MigrationSource migration, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!migration.Stats.Status.IsFinished() && migration.Stats.Status != MigrationStatus.PostcopyPaused)
        {
            Assert.True(clock.Elapsed < timeout, $"the migration is still {migration.Stats.Status} after {timeout.TotalSeconds} s");
            Thread.Sleep(20);
        }

        return migration.Stats;
    }

    /// <summary>The source's guest runs (again): its run state says so and it keeps printing passes.</summary>
    private static void AssertGuestRunsOn(TestMachine source)
    {
        Assert.Equal(RunState.Running, source.Machine.RunState);
        int before = source.CountB();
        source.WaitForSerial(s => s.Count(c => c == 'B') > before, "another pass of the guest after the failed migration");
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
            // Cleaned up with the rest of temp eventually.
        }
    }
}
