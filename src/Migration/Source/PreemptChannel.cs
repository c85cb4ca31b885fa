using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;

namespace Vmm.Migration.Source;

/// <summary>
/// The source's end of the postcopy preempt channel (capability postcopy-preempt): a second connection to the
/// destination that carries nothing but the answers to page requests, so an answer never waits behind the background
/// push in the main connection's socket buffer. Opened right after ADVISE (before anything irreversible); its first
/// record says which migration it belongs to.
/// </summary>
/// <remarks>
/// Written under <see cref="Gate"/> by whoever serves a request — the return-path thread, or the migration thread for
/// requests that came before Run — with its own zero-page detector: the push thread uses the main writer's lock and
/// detector meanwhile.
/// </remarks>
internal sealed class PreemptChannel : IDisposable
{
    private readonly MigrationConnection connection;
    private readonly long helloBytes;

    private PreemptChannel(MigrationConnection connection, long helloBytes)
    {
        this.connection = connection;
        this.helloBytes = helloBytes;
    }

    /// <summary>Bytes sent on the channel: the introduction (written around <see cref="Writer"/>) and the answers.</summary>
    public long BytesWritten => helloBytes + Writer.BytesWritten;

    public object Gate { get; } = new();

    public RecordWriter Writer => connection.Writer;

    public ZeroPageDetector ZeroPages { get; } = new();

    /// <summary>4 KiB pages answered on this channel (written under <see cref="Gate"/>, read by the stats).</summary>
    public long PagesSent => Interlocked.Read(ref pagesSent);

    private long pagesSent;

    public void CountPages(ulong pages) => Interlocked.Add(ref pagesSent, (long)pages);

    /// <summary>
    /// Connects to the destination again and introduces the connection with the destination's token; the shared ring's
    /// memfd, when the destination took one, comes with the introduction's bytes.
    /// </summary>
    public static PreemptChannel Open(MigrationUri uri, ReadOnlySpan<byte> token, SharedPageRing? ring, TimeSpan writeTimeout = default)
    {
        MigrationConnection connection;
        try
        {
            connection = MigrationConnection.Connect(uri, TimeSpan.FromSeconds(10));
            connection.SetTimeouts(TimeSpan.Zero, writeTimeout == default ? MigrationTimeouts.Default.Write : writeTimeout);
        }
        catch (MigrationFailedException e)
        {
            throw new MigrationFailedException($"cannot open the postcopy preempt channel: {e.Message}", e);
        }

        try
        {
            var hello = new MemoryStream();
            StreamHeader.Write(hello);
            var writer = new RecordWriter(hello, maxPayload: token.Length);
            writer.Write(RecordType.PostcopyPreemptChannel, token);
            writer.Flush();
            if (ring is null)
            {
                connection.OutputStream.Write(hello.GetBuffer(), 0, (int)hello.Length);
                connection.OutputStream.Flush();
            }
            else
            {
                connection.SendWithDescriptor(hello.GetBuffer().AsSpan(0, (int)hello.Length), ring.Descriptor);
            }

            return new PreemptChannel(connection, hello.Length);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>The destination closed the channel (it never writes on it), or it broke.</summary>
    public bool IsClosed => connection.PeerClosed;

    public void Abort() => connection.Abort();

    public void Dispose()
    {
        connection.Dispose();
        ZeroPages.Dispose();
    }
}
