using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Tests.Migration;

/// <summary>
/// Issue 18, the destination's side: a source that sends well-framed records the protocol does not allow, numbers
/// chosen to hurt, or nothing at all. Before the guest runs there, every such source ends the incoming migration with
/// an Error record and a migration failure (exit status 8), never another exception; after the switchover it pauses
/// the migration and keeps the guest. Nothing waits forever.
/// </summary>
public sealed class HostileSourceTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vmm-hostile-src-").FullName;

    /// <summary>A State record whose blob claims 2^31 bytes or more: corruption, not an OverflowException.</summary>
    [Fact]
    public void AStateBlobLengthOfTwoToTheThirtyOneIsCorruption()
    {
        using FakeSource source = FakeSource.Start(dir);
        byte[] payload = [.. Name("cpu0"), 1, 0, 0, 0, 0, 0, 0, 0x80];
        source.Send(RecordType.State, payload);
        source.ExpectFailed("corrupt migration stream: a State record is shorter than its fields");
    }

    /// <summary>A resizable block's used length of 0 or one not a page multiple: a layout refusal, not an ArgumentException.</summary>
    [Theory]
    [InlineData(0ul)]
    [InlineData(4097ul)]
    public void AResizableBlockUsedLengthThatIsNotWholePagesIsRefused(ulong used)
    {
        using FakeSource source = FakeSource.Start(dir, connect: false, extraBlocks: ("extra", 0x4000_0000, 1 << 20, 4 << 20));
        source.Connect();
        RamLayout mine = RamLayout.Of(source.Destination.Machine.Ram);
        source.Handshake(new RamLayout([.. mine.Blocks.Select(b => b.Name == "extra" ? b with { UsedLength = used } : b)]));
        source.ExpectFailed($"RAM block 'extra': {used} bytes used on the source is not a non-zero multiple of the page size 4096");
        Assert.Equal(1ul << 20, source.Destination.Machine.Ram.FindByName("extra")!.UsedLength);
    }

    /// <summary>A cpu0 section carrying an MSR this vmm does not migrate (one KVM would refuse half-way through loading).</summary>
    [Fact]
    public void ACpuSectionWithAnMsrThatIsNotMigratedIsRefused()
    {
        using FakeSource source = FakeSource.Start(dir);
        foreach (StateSection section in FakeSource.Sections())
        {
            (section.Name == "cpu0" ? WithExtraMsr(section, 0xDEADBEEF) : section).Write(source.Writer);
        }

        source.Seal(RecordType.End);
        source.ExpectFailed("state section 'cpu0': MSR 0xdeadbeef is not one this vmm migrates");
    }

    /// <summary>A second PostcopyAdvise would open another userfaultfd and start more threads, every time.</summary>
    [Fact]
    public void ASecondPostcopyAdviseIsAProtocolError()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.Send(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
        source.ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyAdviseAccepted, "PostcopyAdviseAccepted");
        source.Send(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
        source.ExpectFailed("protocol error: unexpected PostcopyAdvise record from the source (destination state postcopy advised)");
        Assert.Single(source.ReturnPath.Snapshot(), r => r.Type == RecordType.PostcopyAdviseAccepted);
    }

    /// <summary>PostcopyRun without PostcopyListen would start the guest with its discarded pages reading as zeros.</summary>
    [Fact]
    public void PostcopyRunWithoutListenIsAProtocolError()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.Send(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
        source.ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyAdviseAccepted, "PostcopyAdviseAccepted");
        DiscardRecord.Write(source.Writer, 0, [(1ul << 20, 1ul << 20)]);

        source.Seal(RecordType.PostcopyRun);
        source.ExpectFailed("protocol error: unexpected PostcopyRun record from the source (destination state postcopy discarding)");
    }

    /// <summary>End once pages have been discarded would start the guest as if precopy had finished, with holes.</summary>
    [Fact]
    public void EndAfterADiscardIsAProtocolError()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.Send(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
        source.ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyAdviseAccepted, "PostcopyAdviseAccepted");
        DiscardRecord.Write(source.Writer, 0, [(1ul << 20, 1ul << 20)]);

        source.Seal(RecordType.End);
        source.ExpectFailed("protocol error: unexpected End record from the source (destination state postcopy discarding)");
    }

    /// <summary>
    /// After PostcopyRun the guest runs here: End, Run or State again would reload vCPU state into it, and any error
    /// used to dispose it. Now each is refused, the migration pauses, and the guest keeps running here.
    /// </summary>
    [Theory]
    [InlineData(RecordType.End)]
    [InlineData(RecordType.PostcopyRun)]
    [InlineData(RecordType.State)]
    [InlineData(RecordType.PostcopyAdvise)]
    public void AnIllegalRecordAfterRunPausesAndKeepsTheGuest(RecordType type)
    {
        using FakeSource source = FakeSource.Start(dir);
        source.RunPostcopy();
        if (type == RecordType.State)
        {
            FakeSource.Sections()[0].Write(source.Writer);
            source.Writer.Flush();
        }
        else if (type == RecordType.PostcopyAdvise)
        {
            source.Send(type, [0, 0, 0, 0]);
        }
        else
        {
            source.Seal(type);
        }

        source.ExpectPaused($"protocol error: unexpected {type} record from the source (destination state postcopy running)");
    }

    /// <summary>A corrupt record after the switchover (a page of a block that does not exist) pauses too; it never disposes the guest.</summary>
    [Fact]
    public void ACorruptRecordAfterRunPausesAndKeepsTheGuest()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.RunPostcopy();
        PageRecord.WriteZeros(source.Writer, 7, 0, 4096);
        source.Writer.Flush();
        source.ExpectPaused("corrupt migration stream: block index 7 (the layout has 1 blocks)");
    }

    /// <summary>
    /// The connection breaks between PostcopyListen and PostcopyRun: no guest has run here, so this is a failure
    /// (exit status 8, userfaultfd released), not a pause in inmigrate with no guest.
    /// </summary>
    [Fact]
    public void ABreakBetweenListenAndRunFailsTheMigration()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.Send(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
        source.ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyAdviseAccepted, "PostcopyAdviseAccepted");
        source.Send(RecordType.PostcopyListen, []);
        source.Connection.Abort();
        Assert.True(source.Ended(TimeSpan.FromSeconds(30)), "the destination did not notice the break");
        Assert.IsType<MigrationStreamException>(source.IncomingError);
        Assert.Equal(MigrationStatus.Failed, source.Destination.Machine.Migration.Stats!.Status);
        Assert.Equal(RunState.InMigrate, source.Destination.Machine.RunState);
    }

    /// <summary>State sections are kept until End: their number and size are bounded, and a name may come once.</summary>
    [Fact]
    public void StateSectionsAreBounded()
    {
        using FakeSource source = FakeSource.Start(dir);
        byte[] data = new byte[64 << 10];
        for (int i = 0; i <= RecordLimits.MaxSections; i++)
        {
            new StateSection($"junk{i}", 1, data).Write(source.Writer);
        }

        source.Writer.Flush();
        source.ExpectFailed($"more than {RecordLimits.MaxSections} state sections");
    }

    /// <summary>Few sections but large ones: their bytes together are bounded too (500 × 2 MiB once took +1 GB).</summary>
    [Fact]
    public void StateBytesAreBounded()
    {
        using FakeSource source = FakeSource.Start(dir);
        byte[] data = new byte[RecordLimits.MaxSectionBytes];
        int sections = (RecordLimits.MaxStateBytes / RecordLimits.MaxSectionBytes) + 1;
        Assert.True(sections < RecordLimits.MaxSections);
        for (int i = 0; i < sections; i++)
        {
            new StateSection($"junk{i}", 1, data).Write(source.Writer);
        }

        source.Writer.Flush();
        source.ExpectFailed($"or {RecordLimits.MaxStateBytes} bytes of state");
    }

    [Fact]
    public void AStateSectionNameMayComeOnlyOnce()
    {
        using FakeSource source = FakeSource.Start(dir);
        new StateSection("cpu0", 1, [1]).Write(source.Writer);
        new StateSection("cpu0", 1, [2]).Write(source.Writer);
        source.Writer.Flush();
        source.ExpectFailed("state section 'cpu0' appears twice");
    }

    /// <summary>
    /// A flipped length in an End record (a record with no payload): corruption at once, not a wait for a megabyte
    /// that never comes and a report of truncation after the source gives up.
    /// </summary>
    [Fact]
    public void AFlippedLengthInEndIsCorruptionAtOnce()
    {
        using FakeSource source = FakeSource.Start(dir);
        byte[] end = [(byte)RecordType.End, 0, 0, 0x10, 0, 0, 0, 0, 0];
        BinaryPrimitives.WriteUInt32LittleEndian(end.AsSpan(5), ~Crc32C.Append(uint.MaxValue, end.AsSpan(0, 5)));
        source.SendRaw(end);
        source.ExpectFailed("corrupt migration stream: End record of 1048576 bytes", seconds: 10);
    }

    /// <summary>
    /// A record lost on the way (each record's own CRC is fine): End's seal says how many records came before it and
    /// their running digest, so the destination refuses to start a guest from a stream with a hole.
    /// </summary>
    [Fact]
    public void ARecordLostBeforeEndIsCorruption()
    {
        using FakeSource source = FakeSource.Start(dir);
        IReadOnlyList<StateSection> sections = FakeSource.Sections();
        sections[0].Write(source.Writer);
        foreach (StateSection section in sections.Skip(1))
        {
            section.Write(source.Writer);
        }

        // Sealed as if the first section had been counted twice (one copy "lost" on the way).
        source.Writer.Flush();
        byte[] seal = new byte[StreamSeal.Size];
        BinaryPrimitives.WriteUInt64LittleEndian(seal, (ulong)source.Writer.Records + 1);
        BinaryPrimitives.WriteUInt32LittleEndian(seal.AsSpan(8), source.Writer.Digest);
        source.Send(RecordType.End, seal);
        source.ExpectFailed("corrupt migration stream: the records did not arrive as they were sent");
    }

    /// <summary>Two records swapped on the way: the same count, another digest.</summary>
    [Fact]
    public void RecordsSwappedBeforeRunAreCorruption()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.Send(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
        source.ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyAdviseAccepted, "PostcopyAdviseAccepted");
        source.Send(RecordType.PostcopyListen, []);
        IReadOnlyList<StateSection> sections = FakeSource.Sections();

        // The seal a source computes for sections in their order; the destination gets the first two swapped.
        var inOrder = new RecordWriter(System.IO.Stream.Null);
        RamLayout.Of(source.Destination.Machine.Ram).Write(inOrder);
        inOrder.Write(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
        inOrder.Write(RecordType.PostcopyListen, []);
        foreach (StateSection section in sections)
        {
            section.Write(inOrder);
        }

        foreach (StateSection section in sections.Skip(1).Take(1).Concat(sections.Take(1)).Concat(sections.Skip(2)))
        {
            section.Write(source.Writer);
        }

        Assert.Equal(inOrder.Records, source.Writer.Records);
        Assert.NotEqual(inOrder.Digest, source.Writer.Digest);
        byte[] seal = new byte[StreamSeal.Size];
        BinaryPrimitives.WriteUInt64LittleEndian(seal, (ulong)inOrder.Records);
        BinaryPrimitives.WriteUInt32LittleEndian(seal.AsSpan(8), inOrder.Digest);
        source.Send(RecordType.PostcopyRun, seal);
        source.ExpectFailed("corrupt migration stream: the records did not arrive as they were sent");
    }

    /// <summary>A discard record claiming more ranges than a record holds is refused before anything is discarded.</summary>
    [Fact]
    public void ADiscardRecordOverItsLimitIsCorruption()
    {
        using FakeSource source = FakeSource.Start(dir);
        source.Send(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
        source.ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyAdviseAccepted, "PostcopyAdviseAccepted");
        byte[] discard = new byte[6];
        BinaryPrimitives.WriteUInt32LittleEndian(discard.AsSpan(2), uint.MaxValue);
        source.Send(RecordType.PostcopyDiscard, discard);
        source.ExpectFailed("discard ranges in one record");
    }

    /// <summary>Names from the source are bounded in the stream, and escaped and cut wherever they are printed.</summary>
    [Fact]
    public void PeerNamesAreBoundedAndEscaped()
    {
        using (FakeSource source = FakeSource.Start(dir, connect: false))
        {
            source.Connect();
            source.Handshake(new RamLayout([new RamBlockDescriptor(new string('x', 60_000), 0, 16 << 20, 16 << 20, 4096, RamBackend.Anonymous)]));
            source.ExpectFailed("corrupt migration stream: a name of 60000 bytes in a Setup record (at most 255)");
        }

        using FakeSource hostile = FakeSource.Start(dir, connect: false);
        hostile.Connect();
        string name = "pc.ram\n\u001b[2J\u0007vmm: error: forged line" + new string('y', 150);
        RamLayout mine = RamLayout.Of(hostile.Destination.Machine.Ram);
        hostile.Handshake(new RamLayout([.. mine.Blocks, new RamBlockDescriptor(name, 1ul << 32, 1 << 20, 1 << 20, 4096, RamBackend.Anonymous)]));
        string error = hostile.ExpectFailed("does not exist here");
        Assert.DoesNotContain('\n', error);
        Assert.DoesNotContain('\u001b', error);
        Assert.DoesNotContain('\u0007', error);
        Assert.Contains("pc.ram\\u000a\\u001b[2J\\u0007vmm: error: forged line", error);
        Assert.Contains("…[cut]", error);
        Assert.True(error.Length < 400, $"{error.Length} characters: {error}");
    }

    /// <summary>
    /// A connection that sends nothing (a port scan that connects, a stray client) is dropped after the header timeout
    /// and the destination goes on waiting: the real source that connects after it is served.
    /// </summary>
    [Fact]
    public void AConnectionThatSendsNothingIsDroppedAndTheWaitGoesOn()
    {
        var timeouts = new MigrationTimeouts { Header = TimeSpan.FromSeconds(1) };
        using FakeSource source = FakeSource.Start(dir, timeouts, connect: false);
        using var stray = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        stray.Connect(new UnixDomainSocketEndPoint(source.SocketPath));
        using (var scan = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            scan.Connect(new UnixDomainSocketEndPoint(source.SocketPath));
        }

        source.Connect();
        source.Handshake(RamLayout.Of(source.Destination.Machine.Ram));
        source.ReturnPath.WaitFor(r => r.Type == RecordType.SetupAccepted, "SetupAccepted after the stray connections were dropped", seconds: 30);
        Assert.Equal(0, stray.Receive(new byte[1]));
    }

    /// <summary>A source that goes quiet mid-migration: the destination fails after its read timeout instead of waiting forever.</summary>
    [Fact]
    public void ASourceThatGoesQuietFailsTheMigrationAfterTheReadTimeout()
    {
        var timeouts = new MigrationTimeouts { Read = TimeSpan.FromSeconds(2) };
        using FakeSource source = FakeSource.Start(dir, timeouts);
        var clock = Stopwatch.StartNew();
        source.ExpectFailed("migration connection timed out", seconds: 30);
        Assert.InRange(clock.Elapsed.TotalSeconds, 1, 20);
    }

    /// <summary>quit while the destination waits for the source's next record: the wait ends at once.</summary>
    [Fact]
    public void InterruptEndsAWaitForTheNextRecord()
    {
        using FakeSource source = FakeSource.Start(dir);
        Assert.False(source.Ended(TimeSpan.FromMilliseconds(300)));
        var clock = Stopwatch.StartNew();
        source.Destination.Machine.Migration.InterruptIncoming();
        Assert.True(source.Ended(TimeSpan.FromSeconds(5)), "the destination kept waiting after it was interrupted");
        Assert.InRange(clock.Elapsed.TotalSeconds, 0, 5);
        Assert.IsType<MigrationFailedException>(source.IncomingError);
        Assert.Equal("the destination was stopped while it received the migration", source.IncomingError!.Message);
    }

    /// <summary>The migration socket is the owner's only (0600), whatever the umask (022 here), like the monitor's.</summary>
    [Fact]
    public void TheUnixMigrationSocketIsOwnerOnly()
    {
        string path = Path.Combine(dir, "mode.sock");
        using Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{path}"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    private static byte[] Name(string name) => [(byte)name.Length, 0, .. System.Text.Encoding.UTF8.GetBytes(name)];

    /// <summary>The section with one more MSR entry (index, reserved, data) after the others.</summary>
    private static StateSection WithExtraMsr(StateSection section, uint index)
    {
        // kvm_regs, kvm_sregs, kvm_fpu, kvm_xcrs, then the i32 MSR count (docs/migration.md, State sections).
        const int CountAt = 144 + 312 + 416 + 392;
        int count = BinaryPrimitives.ReadInt32LittleEndian(section.Data.AsSpan(CountAt));
        int insertAt = CountAt + 4 + (count * 16);
        byte[] entry = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(entry, index);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(8), 1);
        byte[] data = [.. section.Data.AsSpan(0, insertAt), .. entry, .. section.Data.AsSpan(insertAt)];
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(CountAt), count + 1);
        return section with { Data = data };
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
