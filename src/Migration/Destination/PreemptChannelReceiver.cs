using System.Diagnostics;
using System.Net.Sockets;
using Serilog;
using Vmm.Linux;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;

namespace Vmm.Migration.Destination;

/// <summary>
/// The destination's end of the postcopy preempt channel: accepts the source's second connection on the migration
/// listener, checks it carries this migration's token, and then places the page answers it brings.
/// </summary>
/// <remarks>
/// <para>
/// Two threads take answers off the channel, whichever comes first. During the push the receive thread is busy anyway:
/// between two records of the main stream it calls <see cref="PlaceWaiting"/>, which finds an answer already in the
/// socket without anyone being woken. When the main stream is quiet, this class's thread, asleep in poll(), wakes
/// and places it. Reads happen under one lock, on an unbuffered stream, so "bytes in the socket" means "an answer
/// (or its start) waiting". Placement is safe from both threads: a page placed twice is a harmless EEXIST duplicate.
/// </para>
/// <para>
/// Nothing is placed before <see cref="StartPlacing"/> (the guest runs here): until then the main stream may still
/// discard pages and count what is missing. Until then the thread also watches the idle channel, so that one closed
/// during precopy fails the migration while the guest still runs on the source, not after the switchover. A
/// connection that does not introduce itself with the token within 5 s is closed and the wait goes on. When the
/// channel breaks before the migration is complete, <c>broken</c> is called so the migration can fail or pause as for
/// the main connection.
/// </para>
/// <para>
/// When this side took the source's shared-memory ring, the ring's memfd comes with the introduction (SCM_RIGHTS):
/// the introduction is read with recvmsg. A token holder whose ring is unusable fails the migration; one whose ring
/// did not come (a proxy that forwards bytes only) is taken without it, and PostcopyDiscarded says so.
/// </para>
/// </remarks>
internal sealed class PreemptChannelReceiver : IDisposable
{
    /// <summary>How long the source has from our offer (PostcopyAdviseAccepted) to connect.</summary>
    public static readonly TimeSpan AcceptTimeout = TimeSpan.FromSeconds(60);

    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Stream header, then the PostcopyPreemptChannel record: type, u32 length, 16-byte token, CRC.</summary>
    private const int HelloSize = StreamHeader.Size + 5 + TokenSize + 4;

    private const int TokenSize = 16;

    private const int PollMicroseconds = 100_000;

    private readonly Socket listener;
    private readonly byte[] token;
    private readonly ILogger log;
    private readonly Action<PageRecord.Parsed> place;
    private readonly Action<string> broken;
    private readonly bool expectRing;
    private readonly TimeSpan readTimeout;
    private readonly Thread thread;
    private readonly CancellationTokenSource stop = new();
    private readonly ManualResetEventSlim attached = new();
    private readonly ManualResetEventSlim placing = new();
    private readonly object readGate = new();
    private volatile Socket? socket;
    private volatile Socket? candidate;
    private RecordReader? reader;
    private long pagesReceived;

    /// <summary>Where sparse answers are expanded before they are placed (by whichever thread holds the read lock).</summary>
    private SparseExpansionBuffer? sparseBuffer;
    private int failed;

    /// <param name="readTimeout">
    /// The longest a record, once started, may take to arrive in full: a source that sends half a record and stops
    /// breaks the channel rather than hold this thread (and the migration) forever.
    /// </param>
    public PreemptChannelReceiver(
        Socket listener, byte[] token, ILogger log, Action<PageRecord.Parsed> place, Action<string> broken, bool expectRing = false, TimeSpan readTimeout = default)
    {
        this.readTimeout = readTimeout == default ? MigrationTimeouts.Default.Read : readTimeout;
        if (token.Length != TokenSize)
        {
            throw new ArgumentException($"a preempt token is {TokenSize} bytes", nameof(token));
        }

        this.listener = listener;
        this.token = token;
        this.log = log;
        this.place = place;
        this.broken = broken;
        this.expectRing = expectRing;
        thread = new Thread(Run) { IsBackground = true, Name = "postcopy preempt" };
    }

    /// <summary>4 KiB pages placed (or found here already) from this channel.</summary>
    public long PagesReceived => Interlocked.Read(ref pagesReceived);

    /// <summary>Bytes read from the channel so far.</summary>
    public long BytesReceived => (reader?.BytesRead ?? 0) + (socket is null ? 0 : HelloSize);

    /// <summary>The source's shared-memory ring, once the channel is attached (null when none was agreed).</summary>
    public SharedPageRing? Ring { get; private set; }

    public void Start() => thread.Start();

    /// <summary>Waits for the source's connection to arrive and introduce itself; false on timeout.</summary>
    public bool WaitAttached(TimeSpan timeout) => attached.Wait(timeout);

    /// <summary>
    /// Before the switchover: the channel is attached and not closed. Exact until <see cref="StartPlacing"/>, since
    /// nothing reads it before then (readable with no bytes waiting means the source has closed it).
    /// </summary>
    public bool IsAlive => Volatile.Read(ref failed) == 0 && socket is { } channel && !(channel.Poll(0, SelectMode.SelectRead) && channel.Available == 0);

    /// <summary>The guest runs here: answers may be placed from now on.</summary>
    public void StartPlacing() => placing.Set();

    /// <summary>
    /// Receive thread, between records: places the answers already in the socket, if no other thread is at it. One
    /// FIONREAD when there are none. Only whole records are read here: the start of one whose rest is still on its way
    /// is left to this class's thread, so a source that sends half a record never stalls the main stream.
    /// </summary>
    public void PlaceWaiting()
    {
        Socket? channel = socket;
        if (channel is null || !placing.IsSet || Volatile.Read(ref failed) != 0 || channel.Available == 0 || !Monitor.TryEnter(readGate))
        {
            return;
        }

        try
        {
            while (WholeRecordWaiting(channel))
            {
                PlaceOne();
            }
        }
        catch (Exception e) when (!stop.IsCancellationRequested)
        {
            Fail(e.Message);
        }
        catch (Exception)
        {
            // Shutting down: the channel was closed under us.
        }
        finally
        {
            Monitor.Exit(readGate);
        }
    }

    /// <summary>
    /// Whether a whole record (or one the reader refuses at its header: an impossible length) is in the socket.
    /// Peeks at the 5-byte record header; the reader's checks then apply as to any record.
    /// </summary>
    private static bool WholeRecordWaiting(Socket channel)
    {
        int available = channel.Available;
        if (available < 5)
        {
            return false;
        }

        Span<byte> head = stackalloc byte[5];
        if (channel.Receive(head, SocketFlags.Peek) < 5)
        {
            return false;
        }

        uint length = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(head[1..]);
        return length > RecordReader.MaxPayload || (ulong)available >= 5 + (ulong)length + 4;
    }

    private void Run()
    {
        try
        {
            Socket channel = AcceptChannel();
            while (true)
            {
                // Readable: an answer, or the end of the channel. A timeout only rechecks the stop.
                stop.Token.ThrowIfCancellationRequested();
                if (!channel.Poll(PollMicroseconds, SelectMode.SelectRead))
                {
                    continue;
                }

                if (!placing.IsSet)
                {
                    lock (readGate)
                    {
                        if (channel.Available == 0)
                        {
                            // Closed (or broken) before the guest runs here: the read says how.
                            reader!.Read();
                        }
                    }

                    // Bytes before the guest runs here: the source answers only after Run; they wait until then.
                    placing.Wait(stop.Token);
                    continue;
                }

                lock (readGate)
                {
                    if (channel.Available == 0)
                    {
                        if (channel.Poll(0, SelectMode.SelectRead) && channel.Available == 0)
                        {
                            // Readable with nothing to read, and nobody else reads under this lock: closed.
                            PlaceOne();
                        }

                        continue;
                    }

                    while (channel.Available > 0)
                    {
                        PlaceOne();
                    }
                }
            }
        }
        catch (Exception e) when (stop.IsCancellationRequested)
        {
            log.Debug("postcopy preempt channel closed: {Message}", e.Message);
        }
        catch (Exception e)
        {
            Fail(e is MigrationStreamException && e.Message.StartsWith("truncated", StringComparison.Ordinal) ? "the source closed it" : e.Message);
        }
    }

    /// <summary>Reads one record (under the read lock) and places it.</summary>
    private void PlaceOne()
    {
        Record record = reader!.Read();
        if (record.Type != RecordType.Page)
        {
            throw new MigrationStreamException($"protocol error: {record.Type} on the postcopy preempt channel, which carries only Page records");
        }

        PageRecord.Parsed page = PageRecord.Read(record);
        if (page.Sparse)
        {
            page = page.Expanded(sparseBuffer ??= new SparseExpansionBuffer());
        }

        if (page.Shared is not null)
        {
            throw new MigrationStreamException("protocol error: a shared-ring Page record on the postcopy preempt channel (answers carry their data)");
        }

        place(page);
        sparseBuffer?.Reset();
        Interlocked.Add(ref pagesReceived, (long)Math.Max(1, page.Length / Ram.DirtyBitmap.PageSize));
    }

    private void Fail(string message)
    {
        if (Interlocked.Exchange(ref failed, 1) == 0)
        {
            broken(message);
        }
    }

    /// <summary>
    /// Accepts connections until one says it is this migration's preempt channel. Polls the listener (100 ms at a
    /// time, to notice <see cref="Dispose"/>) and accepts synchronously: an asynchronous accept would complete on the
    /// thread pool, which may be busy exactly then.
    /// </summary>
    private Socket AcceptChannel()
    {
        long from = Stopwatch.GetTimestamp();
        while (true)
        {
            stop.Token.ThrowIfCancellationRequested();
            if (Stopwatch.GetElapsedTime(from) > AcceptTimeout)
            {
                throw new MigrationFailedException($"the source did not open the postcopy preempt channel within {AcceptTimeout.TotalSeconds:F0} s");
            }

            if (!listener.Poll(PollMicroseconds, SelectMode.SelectRead))
            {
                continue;
            }

            Socket accepted;
            try
            {
                accepted = listener.Accept();
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.ConnectionAborted)
            {
                continue;
            }

            candidate = accepted;
            FileDescriptor? ringFile;
            try
            {
                ringFile = ReadHello(accepted);
            }
            catch (Exception e) when (e is MigrationStreamException or SocketException or LinuxException or ObjectDisposedException && !stop.IsCancellationRequested)
            {
                log.Warning("incoming migration: refused a connection that is not this migration's postcopy preempt channel: {Message}", e.Message);
                accepted.Dispose();
                candidate = null;
                continue;
            }
            catch
            {
                accepted.Dispose();
                throw;
            }

            // The token holder is this migration's source: a missing or unusable ring is its failure, not a stranger's.
            try
            {
                Ring = ringFile is null ? null : SharedPageRing.Attach(ringFile);
            }
            catch (Exception e) when (e is MigrationStreamException or LinuxException)
            {
                ringFile!.Dispose();
                accepted.Dispose();
                throw new MigrationFailedException($"the source's shared-memory ring is unusable: {e.Message}", e);
            }

            if (expectRing && Ring is null)
            {
                // Something between the two ends forwards bytes but not descriptors: PostcopyDiscarded tells the
                // source, which then pushes through the socket.
                log.Warning("incoming migration: the shared-memory ring the source offered did not come with the preempt channel; the push uses the socket");
            }

            // Unbuffered: bytes in the socket are then exactly the records not yet read (see PlaceWaiting). Reads
            // start only when bytes are there, so the timeout bounds a record that stops half-way, not an idle channel.
            MigrationTimeouts.EnableKeepAlive(accepted);
            accepted.ReceiveTimeout = (int)Math.Min(int.MaxValue, readTimeout.TotalMilliseconds);
            reader = new RecordReader(new NetworkStream(accepted, ownsSocket: true));
            socket = accepted;
            candidate = null;
            stop.Token.ThrowIfCancellationRequested();
            attached.Set();
            log.Debug("postcopy preempt channel attached");
            return accepted;
        }
    }

    /// <summary>
    /// Reads exactly the hello's bytes (no more: the answers that follow are read elsewhere) within 5 s in all, and
    /// checks the stream header, the record and the token. Returns the descriptor that came with the bytes, if any:
    /// the shared ring's memfd, when this side agreed to one (otherwise it is closed and the connection refused).
    /// </summary>
    private FileDescriptor? ReadHello(Socket connection)
    {
        FileDescriptor? descriptor = null;
        try
        {
            ReadHello(connection, ref descriptor);
            if (descriptor is not null && !expectRing)
            {
                throw new MigrationStreamException("it passed a file descriptor nobody asked for");
            }

            return descriptor;
        }
        catch
        {
            descriptor?.Dispose();
            throw;
        }
    }

    private void ReadHello(Socket connection, ref FileDescriptor? descriptor)
    {
        byte[] hello = new byte[HelloSize];
        long from = Stopwatch.GetTimestamp();
        for (int done = 0; done < hello.Length;)
        {
            TimeSpan left = HelloTimeout - Stopwatch.GetElapsedTime(from);
            if (left <= TimeSpan.Zero || !connection.Poll((int)Math.Max(1, left.TotalMicroseconds), SelectMode.SelectRead))
            {
                throw new MigrationStreamException($"it sent {done} of the {HelloSize} bytes of a preempt channel's introduction within {HelloTimeout.TotalSeconds:F0} s");
            }

            int read = SocketRights.Receive((int)connection.Handle, hello.AsSpan(done), out FileDescriptor? passed);
            if (passed is not null)
            {
                if (descriptor is not null)
                {
                    passed.Dispose();
                    throw new MigrationStreamException("it passed more than one file descriptor");
                }

                descriptor = passed;
            }

            if (read == 0)
            {
                throw new MigrationStreamException($"it closed after {done} bytes");
            }

            done += read;
        }

        // The bytes are all here: the stream header and the record are checked by the same code as any stream's.
        var input = new MemoryStream(hello);
        StreamHeader.Read(input);
        Record record = new RecordReader(input, TokenSize).Read();
        if (record.Type != RecordType.PostcopyPreemptChannel)
        {
            throw new MigrationStreamException($"it opened with {record.Type}, not a PostcopyPreemptChannel record");
        }

        PayloadReader payload = record.Reader();
        if (!payload.Bytes(TokenSize).SequenceEqual(token))
        {
            throw new MigrationStreamException("it presented another migration's token");
        }

        payload.End();
    }

    /// <summary>Stops the thread (closing the channel) and waits for it. False if it did not stop: it may still place.</summary>
    public bool Stop()
    {
        stop.Cancel();
        Shutdown(candidate);
        Shutdown(socket);
        if (thread.IsAlive && !thread.Join(TimeSpan.FromSeconds(10)))
        {
            log.Warning("postcopy preempt thread did not stop within 10 s");
            return false;
        }

        return true;
    }

    /// <summary>Stops (see <see cref="Stop"/>) and closes the channel. Safe to call again, and after Stop.</summary>
    public void Dispose()
    {
        if (Stop())
        {
            // The receive thread calls PlaceWaiting only before this (it is what disposes): no reader is left, and no
            // one reads the ring.
            socket?.Dispose();
            Ring?.Dispose();
        }
    }

    private static void Shutdown(Socket? channel)
    {
        try
        {
            channel?.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already gone.
        }
    }
}
