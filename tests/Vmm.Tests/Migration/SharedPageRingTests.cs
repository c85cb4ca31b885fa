using System.Collections.Concurrent;
using System.Net.Sockets;
using Vmm.Linux;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// The postcopy push's shared ring on real memfds, futexes and Unix sockets: the destination's end is always a second
/// mapping of a descriptor that travelled with SCM_RIGHTS, as between two processes.
/// </summary>
public class SharedPageRingTests
{
    private const ulong RingSize = 256 << 10;

    [Fact]
    public void RunsArriveIntactAcrossManyWrapsWhileTheSourceWaitsForRoom()
    {
        using SharedPageRing source = SharedPageRing.Create(RingSize);
        using SharedPageRing destination = Passed(source);
        var random = new Random(6);
        var runs = new BlockingCollection<(ulong Position, uint Crc, byte[] Expected)>();
        long waits = 0;

        // The destination places slowly at first, so the source fills the ring and must sleep until room is released.
        Exception? failure = null;
        var consumer = new Thread(() =>
        {
            try
            {
                Consume();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        consumer.Start();

        void Consume()
        {
            int count = 0;
            foreach ((ulong position, uint crc, byte[] expected) in runs.GetConsumingEnumerable())
            {
                if (count++ < 8)
                {
                    Thread.Sleep(20);
                }

                Assert.True(destination.Read(position, (ulong)expected.Length, crc).SequenceEqual(expected), $"run at {position} differs");
                destination.Release(position + (ulong)expected.Length);
            }
        }

        ulong total = 0;
        while (total < 16 * RingSize)
        {
            byte[] run = new byte[4096 * random.Next(1, 17)];
            random.NextBytes(run);
            (ulong position, uint crc) = source.Write(run, () => Interlocked.Increment(ref waits), () => null);
            Assert.Equal(Crc32C.Compute(run), crc);
            runs.Add((position, crc, run));
            total += (ulong)run.Length;
        }

        runs.CompleteAdding();
        Assert.True(consumer.Join(TimeSpan.FromSeconds(30)), "the destination did not finish");
        Assert.Null(failure);
        Assert.True(waits > 0, "the source never had to wait: the ring's flow control was not exercised");
    }

    [Fact]
    public void AChangedByteFailsTheChecksumBeforeAnythingIsPlaced()
    {
        using SharedPageRing source = SharedPageRing.Create(RingSize);
        using SharedPageRing destination = Passed(source);
        byte[] run = new byte[8192];
        new Random(1).NextBytes(run);
        (ulong position, uint crc) = source.Write(run, () => { }, () => null);

        var e = Assert.Throws<MigrationStreamException>(() => destination.Read(position, (ulong)run.Length, crc ^ 1));
        Assert.Contains("CRC", e.Message);
    }

    [Theory]
    [InlineData(4096ul, 4096ul, "does not follow")] // behind what was already released
    [InlineData(RingSize - 4096, 8192ul, "does not follow")] // straddles the end of the ring
    [InlineData(RingSize + 8192, 4096ul, "does not follow")] // ends beyond one ring past what was released
    [InlineData(0ul, 0ul, "does not follow")] // empty
    [InlineData(12288ul, 4096ul, "does not follow")] // leaves a gap after what was released
    [InlineData(8192ul, 100ul, "does not follow")] // not whole pages
    public void APositionOutsideTheRingsOrderIsRefused(ulong position, ulong length, string expected)
    {
        using SharedPageRing source = SharedPageRing.Create(RingSize);
        using SharedPageRing destination = Passed(source);
        destination.Release(8192);

        var e = Assert.Throws<MigrationStreamException>(() => destination.Read(position, length, 0));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AFullRingWithNobodyReleasingGivesUpWhenTheDestinationIsGone()
    {
        using SharedPageRing source = SharedPageRing.Create(RingSize);
        byte[] run = new byte[RingSize / 4];
        for (int i = 0; i < 4; i++)
        {
            source.Write(run, () => { }, () => null);
        }

        long from = Environment.TickCount64;
        var e = Assert.Throws<IOException>(() => source.Write(run, () => { }, () => "the connection closed"));
        Assert.Contains("the connection closed", e.Message);
        Assert.InRange(Environment.TickCount64 - from, 0, 5000);
    }

    [Fact]
    public void ADestinationRefusesARingOfTheWrongSize()
    {
        using FileDescriptor file = Memfd.Create("not-a-ring", Memfd.MFD_ALLOW_SEALING);
        Unistd.Ftruncate(file, 100);
        Memfd.AddSeals(file, Memfd.F_SEAL_SHRINK);
        var e = Assert.Throws<MigrationStreamException>(() => SharedPageRing.Attach(file));
        Assert.Contains("100 bytes", e.Message);
    }

    [Fact]
    public void ADestinationRefusesARingTheSourceCouldStillShrink()
    {
        // Truncated under the destination's mapping, it would kill the destination with SIGBUS while placing.
        using FileDescriptor file = Memfd.Create("unsealed", 0);
        Unistd.Ftruncate(file, (long)(SharedPageRing.HeaderSize + RingSize));
        var e = Assert.Throws<MigrationStreamException>(() => SharedPageRing.Attach(file));
        Assert.Contains("sealed", e.Message);
    }

    [Fact]
    public void TheSourcesRingIsSealedAgainstResizing()
    {
        using SharedPageRing ring = SharedPageRing.Create(RingSize);
        int seals = Memfd.GetSeals(ring.Descriptor);
        Assert.Equal(Memfd.F_SEAL_SHRINK | Memfd.F_SEAL_GROW | Memfd.F_SEAL_SEAL, seals & (Memfd.F_SEAL_SHRINK | Memfd.F_SEAL_GROW | Memfd.F_SEAL_SEAL));
        Assert.Throws<LinuxException>(() => Unistd.Ftruncate(ring.Descriptor, 4096));
    }

    /// <summary>The ring as the destination gets it: its memfd sent over a Unix socket pair and mapped again.</summary>
    private static SharedPageRing Passed(SharedPageRing source)
    {
        (Socket sender, Socket receiver) = SocketPair();
        using (sender)
        using (receiver)
        {
            SocketRights.Send((int)sender.Handle, [1, 2, 3], source.Descriptor.Value);
            byte[] bytes = new byte[3];
            int read = SocketRights.Receive((int)receiver.Handle, bytes, out FileDescriptor? descriptor);
            Assert.Equal(3, read);
            Assert.Equal([1, 2, 3], bytes);
            Assert.NotNull(descriptor);
            Assert.NotEqual(source.Descriptor.Value, descriptor.Value);
            return SharedPageRing.Attach(descriptor);
        }
    }

    private static (Socket Sender, Socket Receiver) SocketPair()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vmm-ring-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var sender = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        sender.Connect(new UnixDomainSocketEndPoint(path));
        Socket receiver = listener.Accept();
        File.Delete(path);
        return (sender, receiver);
    }
}
