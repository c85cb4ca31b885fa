using System.Net.Sockets;
using Serilog;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Source;
using Vmm.Migration.Stream;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// The postcopy preempt channel's handshake and rules, over real Unix sockets: the destination takes only a
/// connection that presents its token, places nothing before the guest runs, and treats anything but a Page record
/// on the channel as a broken channel. (The source's reading of the offer is in <see cref="ReturnPathTests"/>.)
/// </summary>
public sealed class PreemptChannelTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-preempt-").FullName;
    private readonly byte[] token = Guid.NewGuid().ToByteArray();
    private readonly List<(int Block, ulong Offset, ulong Length, bool Zero)> placed = [];
    private readonly ManualResetEventSlim broken = new();
    private string? brokenBecause;

    [Fact]
    public void AStrangerIsRefusedAndTheSourceWithTheTokenIsTaken()
    {
        (Socket listener, MigrationUri uri) = Listen();
        using (listener)
        using (PreemptChannelReceiver receiver = StartReceiver(listener))
        {
            // Another migration's token, then a connection that is not a migration stream at all.
            using (PreemptChannel.Open(uri, Guid.NewGuid().ToByteArray(), ring: null))
            using (var garbage = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                garbage.Connect(new UnixDomainSocketEndPoint(uri.Text["unix:".Length..]));
                garbage.Send("GET / HTTP/1.0\r\n\r\n"u8);
                Assert.False(receiver.WaitAttached(TimeSpan.FromMilliseconds(500)), "a connection without the token was taken");
            }

            using PreemptChannel channel = PreemptChannel.Open(uri, token, ring: null);
            Assert.True(receiver.WaitAttached(Patience), "the source's channel was not taken");
            Assert.False(broken.IsSet);
        }
    }

    [Fact]
    public void NothingIsPlacedBeforeTheGuestRunsHere()
    {
        (Socket listener, MigrationUri uri) = Listen();
        using (listener)
        using (PreemptChannelReceiver receiver = StartReceiver(listener))
        using (PreemptChannel channel = PreemptChannel.Open(uri, token, ring: null))
        {
            Assert.True(receiver.WaitAttached(Patience));
            PageRecord.WriteZeros(channel.Writer, 0, 0x5000, 4096);
            channel.Writer.Flush();

            // The answer waits in the socket: neither the channel's thread nor the receive thread's call places it.
            Thread.Sleep(200);
            receiver.PlaceWaiting();
            Assert.Empty(Placed());

            receiver.StartPlacing();
            Wait.Until(() => receiver.PagesReceived == 1, "the answer was not placed once the guest ran");
            Assert.Equal([(0, 0x5000ul, 4096ul, true)], Placed());
        }
    }

    [Fact]
    public void ARecordOtherThanAPageBreaksTheChannel()
    {
        (Socket listener, MigrationUri uri) = Listen();
        using (listener)
        using (PreemptChannelReceiver receiver = StartReceiver(listener))
        using (PreemptChannel channel = PreemptChannel.Open(uri, token, ring: null))
        {
            Assert.True(receiver.WaitAttached(Patience));
            receiver.StartPlacing();
            channel.Writer.Write(RecordType.PostcopyRun, []);
            channel.Writer.Flush();

            Assert.True(broken.Wait(Patience), "a PostcopyRun record on the preempt channel went unnoticed");
            Assert.Contains("protocol error: PostcopyRun on the postcopy preempt channel", brokenBecause);
            Assert.Empty(Placed());
        }
    }

    [Fact]
    public void TheSharedRingComesWithTheIntroductionAndIsTheSameMemory()
    {
        (Socket listener, MigrationUri uri) = Listen();
        using SharedPageRing ring = SharedPageRing.Create(1 << 20);
        using (listener)
        using (PreemptChannelReceiver receiver = StartReceiver(listener, expectRing: true))
        using (PreemptChannel.Open(uri, token, ring))
        {
            Assert.True(receiver.WaitAttached(Patience), "the source's channel was not taken");
            Assert.NotNull(receiver.Ring);

            byte[] run = new byte[8192];
            new Random(5).NextBytes(run);
            (ulong position, uint crc) = ring.Write(run, () => { }, () => null);
            Assert.True(receiver.Ring.Read(position, (ulong)run.Length, crc).SequenceEqual(run));
            Assert.False(broken.IsSet);
        }
    }

    [Fact]
    public void AnIntroductionWithoutTheRingOfferedIsTakenWithoutIt()
    {
        // What a proxy that forwards bytes but not descriptors delivers: PostcopyDiscarded then tells the source.
        (Socket listener, MigrationUri uri) = Listen();
        using (listener)
        using (PreemptChannelReceiver receiver = StartReceiver(listener, expectRing: true))
        using (PreemptChannel.Open(uri, token, ring: null))
        {
            Assert.True(receiver.WaitAttached(Patience), "the source's channel was not taken");
            Assert.Null(receiver.Ring);
            Assert.False(broken.IsSet);
        }
    }

    [Fact]
    public void ADescriptorNobodyAskedForIsRefused()
    {
        (Socket listener, MigrationUri uri) = Listen();
        using SharedPageRing ring = SharedPageRing.Create(1 << 20);
        using (listener)
        using (PreemptChannelReceiver receiver = StartReceiver(listener, expectRing: false))
        {
            using (PreemptChannel.Open(uri, token, ring))
            {
                Assert.False(receiver.WaitAttached(TimeSpan.FromMilliseconds(500)), "a channel with an unexpected descriptor was taken");
            }

            using PreemptChannel channel = PreemptChannel.Open(uri, token, ring: null);
            Assert.True(receiver.WaitAttached(Patience), "the source's channel was not taken after a refusal");
            Assert.Null(receiver.Ring);
        }
    }

    /// <summary>
    /// Issue 18: a source that sends half a record on the channel and stops. The receive thread (between main-stream
    /// records) takes only whole records, so the main stream never stalls behind it; the channel's own thread gives up
    /// on the record after the read timeout and reports the channel broken (the migration then fails or pauses).
    /// </summary>
    [Fact]
    public void HalfARecordNeitherStallsTheMainStreamNorHangsTheChannel()
    {
        (Socket listener, MigrationUri uri) = Listen();
        using (listener)
        using (PreemptChannelReceiver receiver = StartReceiver(listener, readTimeout: TimeSpan.FromSeconds(2)))
        using (var raw = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            raw.Connect(new UnixDomainSocketEndPoint(uri.Text["unix:".Length..]));
            using var network = new NetworkStream(raw, ownsSocket: false);
            StreamHeader.Write(network);
            var writer = new RecordWriter(network);
            writer.Write(RecordType.PostcopyPreemptChannel, token);
            writer.Flush();
            Assert.True(receiver.WaitAttached(Patience), "the channel was not taken");

            // One whole answer, then the first half of the next.
            PageRecord.WriteZeros(writer, 0, 0x5000, 4096);
            writer.Flush();
            var half = new MemoryStream();
            var halfWriter = new RecordWriter(half);
            PageRecord.WriteData(halfWriter, 0, 0x6000, FakePeer.Pattern(0x42));
            halfWriter.Flush();
            network.Write(half.GetBuffer().AsSpan(0, (int)half.Length / 2));
            network.Flush();

            receiver.StartPlacing();
            var placing = Task.Run(receiver.PlaceWaiting);
            Assert.True(placing.Wait(TimeSpan.FromSeconds(1)), "the receive thread waited for the rest of a record on the preempt channel");
            Assert.True(broken.Wait(TimeSpan.FromSeconds(20)), "the channel's thread waited for the rest of the record forever");
            Assert.Contains("timed out", brokenBecause);
            Assert.Contains(Placed(), p => p.Offset == 0x5000);
            Assert.DoesNotContain(Placed(), p => p.Offset == 0x6000);
        }
    }

    public void Dispose()
    {
        broken.Dispose();
        Directory.Delete(dir, recursive: true);
    }

    private (Socket Listener, MigrationUri Uri) Listen()
    {
        MigrationUri uri = MigrationUri.Parse($"unix:{Path.Combine(dir, "dst.sock")}");
        return (IncomingMigration.Listen(uri), uri);
    }

    private PreemptChannelReceiver StartReceiver(Socket listener, bool expectRing = false, TimeSpan readTimeout = default)
    {
        var receiver = new PreemptChannelReceiver(
            listener,
            token,
            new LoggerConfiguration().CreateLogger(),
            page =>
            {
                lock (placed)
                {
                    placed.Add((page.BlockIndex, page.Offset, page.Length, page.Zero));
                }
            },
            message =>
            {
                brokenBecause = message;
                broken.Set();
            },
            expectRing,
            readTimeout);
        receiver.Start();
        return receiver;
    }

    private List<(int Block, ulong Offset, ulong Length, bool Zero)> Placed()
    {
        lock (placed)
        {
            return [.. placed];
        }
    }
}
