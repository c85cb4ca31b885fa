using System.Net.Sockets;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Stream;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Migration;

/// <summary>
/// A hostile or broken source, written with the stream classes, feeding a real <see cref="IncomingMigration"/> of a
/// real machine in this process: the tests craft any record sequence and check what the destination makes of it.
/// </summary>
internal sealed class FakeSource : IDisposable
{
    private readonly Socket listener;
    private readonly Task incoming;
    private Exception? incomingError;

    private FakeSource(TestMachine destination, Socket listener, string path, MigrationTimeouts? timeouts)
    {
        Destination = destination;
        this.listener = listener;
        SocketPath = path;
        incoming = Task.Run(() =>
        {
            try
            {
                destination.Machine.Migration.RunIncoming(listener, timeouts);
            }
            catch (Exception e)
            {
                incomingError = e;
            }
        });
    }

    public TestMachine Destination { get; }

    public string SocketPath { get; }

    public MigrationConnection Connection { get; private set; } = null!;

    public RecordLog ReturnPath { get; private set; } = null!;

    public RecordWriter Writer => Connection.Writer;

    /// <summary>The exception <see cref="MigrationController.RunIncoming"/> ended with, once it ended; null if it returned.</summary>
    public Exception? IncomingError => incomingError;

    /// <summary>
    /// A destination with postcopy on (16 MiB, plus <paramref name="extraBlocks"/>), listening on a socket in
    /// <paramref name="directory"/>; with <paramref name="connect"/>, connected, the header and the destination's own
    /// layout sent and accepted.
    /// </summary>
    public static FakeSource Start(
        string directory,
        MigrationTimeouts? timeouts = null,
        bool connect = true,
        params (string Name, ulong Gpa, ulong Size, ulong Max)[] extraBlocks)
    {
        TestMachine destination = TestMachine.Create(16 << 20, extraBlocks: extraBlocks);
        destination.Machine.Migration.SetCapabilities(new MigrationCapabilities { PostcopyRam = true, PostcopyPreempt = false });
        destination.Machine.SetStoppedState(RunState.InMigrate);
        string path = Path.Combine(directory, $"in-{Guid.NewGuid():N}.sock"[..16]);
        Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{path}"));
        var source = new FakeSource(destination, listener, path, timeouts);
        if (connect)
        {
            source.Connect();
            source.Handshake(RamLayout.Of(destination.Machine.Ram));
            source.ReturnPath.WaitFor(r => r.Type == RecordType.SetupAccepted, "SetupAccepted");
        }

        return source;
    }

    public void Connect()
    {
        Connection = MigrationConnection.Connect(MigrationUri.Parse($"unix:{SocketPath}"), TimeSpan.FromSeconds(10));
        ReturnPath = new RecordLog(Connection.Reader, "the destination's return path");
    }

    /// <summary>The stream header and a Setup record with <paramref name="layout"/>.</summary>
    public void Handshake(RamLayout layout)
    {
        StreamHeader.Write(Connection.OutputStream);
        layout.Write(Writer);
        Writer.Flush();
    }

    public void Send(RecordType type, ReadOnlySpan<byte> payload)
    {
        Writer.Write(type, payload);
        Writer.Flush();
    }

    /// <summary>End or PostcopyRun sealing every record this fake sent before it, as a real source does.</summary>
    public void Seal(RecordType type)
    {
        StreamSeal.Write(Writer, type);
        Writer.Flush();
    }

    /// <summary>Raw bytes, framing and all (a record the writer would never produce).</summary>
    public void SendRaw(ReadOnlySpan<byte> bytes)
    {
        Connection.OutputStream.Write(bytes);
        Connection.OutputStream.Flush();
    }

    /// <summary>Sends the record(s) <paramref name="write"/> makes, with the last byte (the CRC-32C's top byte) flipped.</summary>
    public void SendWithBadChecksum(Action<RecordWriter> write)
    {
        Writer.Flush();
        using var stream = new MemoryStream();
        var writer = new RecordWriter(stream);
        write(writer);
        writer.Flush();
        byte[] record = stream.ToArray();
        record[^1] ^= 0x40;
        SendRaw(record);
    }

    /// <summary>
    /// The state sections of a machine like the destination: a spin guest stopped the way a migration source stops
    /// it, so the state says it was running and the destination starts it.
    /// </summary>
    public static IReadOnlyList<StateSection> Sections() => Origin().Sections;

    /// <summary>
    /// <see cref="Sections"/>, and the first 64 KiB of the same machine's memory (the guest's code, data and stack), so
    /// that a guest started from them runs its own loop rather than whatever zeros decode to.
    /// </summary>
    public static (IReadOnlyList<StateSection> Sections, byte[] LowMemory) Origin()
    {
        using TestMachine origin = TestMachine.Create(16 << 20, guest: "spin");
        origin.Machine.Start();
        var migratable = new MigratableMachine(origin.Machine);
        Assert.True(migratable.StopForMigration());
        byte[] low = new byte[64 << 10];
        Assert.Equal(low.Length, origin.Machine.Memory.Read(0, low));
        return (migratable.SaveState(), low);
    }

    /// <summary>
    /// A postcopy up to the destination's PostcopyRunning: the spin guest's low 64 KiB as precopy pages, advise (MISSING
    /// faults, no preempt), discard [8 MiB, 9 MiB) (which the guest never touches, so the migration stays incomplete),
    /// listen, state, run.
    /// </summary>
    public void RunPostcopy()
    {
        (IReadOnlyList<StateSection> sections, byte[] low) = Origin();
        for (int offset = 0; offset < low.Length; offset += 4096)
        {
            PageRecord.Write(Writer, 0, (ulong)offset, low.AsSpan(offset, 4096));
        }

        Send(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
        ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyAdviseAccepted, "PostcopyAdviseAccepted");
        Vmm.Migration.Postcopy.DiscardRecord.Write(Writer, 0, [(8ul << 20, 1ul << 20)]);
        Send(RecordType.PostcopyListen, []);
        foreach (StateSection section in sections)
        {
            section.Write(Writer);
        }

        Seal(RecordType.PostcopyRun);
        ReturnPath.WaitFor(r => r.Type == RecordType.PostcopyRunning, "PostcopyRunning");
        Assert.Equal(RunState.Running, Destination.Machine.RunState);
    }

    /// <summary>
    /// The destination gave up before any guest ran there: an Error record saying <paramref name="expected"/>, the
    /// incoming migration ended with a migration failure (exit status 8 in `run --incoming`), status failed, and the
    /// machine still waits in inmigrate. Returns the Error's text.
    /// </summary>
    public string ExpectFailed(string expected, double seconds = 30)
    {
        SeenRecord error = ReturnPath.WaitFor(r => r.Type == RecordType.Error, "the destination's Error record", seconds: seconds);
        Assert.Contains(expected, error.Text);
        Assert.True(incoming.Wait(TimeSpan.FromSeconds(30)), "the destination did not give up");
        Assert.True(
            incomingError is MigrationFailedException or MigrationStreamException,
            $"the incoming migration ended with {incomingError?.GetType().Name ?? "no exception"}: {incomingError}");
        Assert.Contains(expected, incomingError!.Message);
        Assert.Equal(MigrationStatus.Failed, Destination.Machine.Migration.Stats!.Status);
        Assert.Equal(RunState.InMigrate, Destination.Machine.RunState);
        return error.Text!;
    }

    /// <summary>
    /// After the switchover: the destination keeps the guest (running, machine alive), reports postcopy-paused, and
    /// tells the source why.
    /// </summary>
    public void ExpectPaused(string expected)
    {
        SeenRecord error = ReturnPath.WaitFor(r => r.Type == RecordType.Error, "the destination's Error record");
        Assert.Contains(expected, error.Text);
        Assert.True(incoming.Wait(TimeSpan.FromSeconds(30)), "the destination's receive thread did not end");
        Assert.Null(incomingError);
        MigrationStats stats = Destination.Machine.Migration.Stats!;
        Assert.Equal(MigrationStatus.PostcopyPaused, stats.Status);
        Assert.Contains(expected, stats.ErrorDescription);
        Assert.Equal(RunState.Running, Destination.Machine.RunState);
        Assert.False(Destination.Machine.Exited.IsCompleted, "the destination's machine went away");
    }

    /// <summary>Whether the incoming migration has ended (returned or thrown) within <paramref name="timeout"/>.</summary>
    public bool Ended(TimeSpan timeout) => incoming.Wait(timeout);

    public void Dispose()
    {
        Connection?.Abort();
        listener.Dispose();
        Destination.Machine.Migration.InterruptIncoming();
        incoming.Wait(TimeSpan.FromSeconds(30));
        ReturnPath?.Dispose();
        Connection?.Dispose();
        Destination.Dispose();
    }
}
