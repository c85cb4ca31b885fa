using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Serilog;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Migration.Destination;

/// <summary>
/// The destination of a migration: accepts one connection, checks the source's RAM layout against this machine's
/// before touching guest memory, writes precopied pages, and then either loads the state and starts the guest
/// (precopy End) or walks the postcopy steps (<see cref="PostcopyDestination"/>). Anything wrong in the stream before
/// the guest starts here ends it with an error and no guest runs; after a postcopy switchover the guest lives here
/// and a broken connection only pauses the migration.
/// </summary>
/// <param name="postcopyAllowed">Asked at ADVISE: the capability may be enabled through the monitor while this waits.</param>
/// <param name="minorFaultsAllowed">Asked at ADVISE too: the destination's postcopy-minor-faults capability.</param>
/// <param name="preemptAllowed">Asked at ADVISE too: the destination's postcopy-preempt capability.</param>
/// <param name="sharedMemoryAllowed">Asked at ADVISE too: the destination's postcopy-shared-memory capability.</param>
public sealed partial class IncomingMigration(
    IMigratableMachine machine,
    ILogger log,
    Func<bool> postcopyAllowed,
    Func<bool> minorFaultsAllowed,
    Func<bool> preemptAllowed,
    Func<bool> sharedMemoryAllowed,
    MigrationTimeouts? timeouts = null,
    Func<MigrationTls?>? tlsSettings = null)
{
    private readonly MigrationTimeouts timeouts = timeouts ?? MigrationTimeouts.Default;

    /// <summary>
    /// At PostcopyDiscardSync (the last step before the source stops its guest), how long to wait for a preempt channel
    /// the source asked for and has not opened yet.
    /// </summary>
    private static readonly TimeSpan PreemptAttachTimeout = TimeSpan.FromSeconds(10);

    private const int FailedFirstNone = 0;
    private const int FailedFirstMain = 1;
    private const int FailedFirstPreempt = 2;

    private const ulong PageSize = DirtyBitmap.PageSize;

    private readonly Stopwatch clock = new();
    private readonly object statsGate = new();
    private MigrationStatus status = MigrationStatus.Setup;
    private string? error;
    private ulong pagesReceived;
    private ulong zeroPages;
    private ulong bytesReceived;
    private ulong sharedPages;
    private ulong sparsePages;
    private int passes;
    private PostcopyDestination? postcopy;
    private PreemptChannelReceiver? preempt;

    /// <summary>From ADVISE to the end of the connection: a second thread placing the push's sparse records.</summary>
    private PlacementWorker? placer;
    private volatile string? preemptFailure;

    /// <summary>
    /// Where the receive thread expands sparse Page records in postcopy before placing them (and the recovered
    /// connection's thread, its own): allocated on the first such record.
    /// </summary>
    private SparseExpansionBuffer? sparseBuffer;
    private SparseExpansionBuffer? recoverySparseBuffer;

    /// <summary>Where the protocol is: which records are legal next (<see cref="IncomingPhases.Accepts"/>).</summary>
    private volatile IncomingPhase phase = IncomingPhase.Precopy;

    private volatile bool interrupted;

    /// <summary>The migration connection, once accepted: <see cref="Interrupt"/> aborts it.</summary>
    private volatile MigrationConnection? current;

    /// <summary>An accepted connection not yet known to be the migration.</summary>
    private volatile Socket? candidate;

    /// <summary>Which connection broke first (the other one usually follows): that one is named as the cause.</summary>
    private int firstFailure = FailedFirstNone;

    /// <summary>query-migrate on the destination.</summary>
    public MigrationStats Stats
    {
        get
        {
            lock (statsGate)
            {
                PostcopyDestination? p = postcopy;
                return new MigrationStats
                {
                    Status = status,
                    ErrorDescription = error,
                    TotalTimeMs = clock.ElapsedMilliseconds,
                    TransferredBytes = bytesReceived + (ulong)(preempt?.BytesReceived ?? 0) + (sharedPages * PageSize),
                    NormalPages = pagesReceived - zeroPages,
                    DuplicatePages = zeroPages,
                    Passes = passes,
                    PostcopyRequests = (ulong)(p?.Requests ?? 0),
                    PostcopyLocalFaults = (ulong)(p?.LocalFaults ?? 0),
                    PostcopyContinuePages = (ulong)(p?.LocalContinues ?? 0),
                    PostcopyFetchedPages = (ulong)(p?.PagesPlaced ?? 0),
                    PostcopyMinorBlocks = p?.MinorBlocks ?? 0,
                    PostcopyStalePages = (ulong)(p?.StalePages ?? 0),
                    RemainingBytes = (ulong)Math.Max(0, p?.RemainingPages ?? 0) * 4096,
                    PostcopyDroppedPages = (ulong)(p?.DroppedPages ?? 0),
                    PostcopyDuplicatePages = (ulong)(p?.DuplicatePages ?? 0),
                    PostcopyPreemptPages = (ulong)(preempt?.PagesReceived ?? 0),
                    PostcopySharedPages = sharedPages,
                    SparsePages = sparsePages,
                    PostcopyBlocktimeMs = p?.Latency.TotalMilliseconds ?? 0,
                    FaultLatencyP50Us = p?.Latency.PercentileMicroseconds(0.50) ?? 0,
                    FaultLatencyP99Us = p?.Latency.PercentileMicroseconds(0.99) ?? 0,
                    FaultLatencyMaxUs = p?.Latency.MaxMicroseconds ?? 0,
                    FaultCount = (ulong)(p?.Latency.Count ?? 0),
                };
            }
        }
    }

    /// <summary>Raised on status changes (MIGRATION events on the destination).</summary>
    public event Action<MigrationStatus>? StatusChanged;

    /// <summary>Binds and listens; a stale Unix socket file is replaced.</summary>
    public static Socket Listen(MigrationUri uri)
    {
        Socket listener = uri.CreateSocket();
        try
        {
            if (uri.EndPoint is UnixDomainSocketEndPoint unix)
            {
                RemoveStaleSocket(unix.ToString()!, uri);
            }

            if (uri.EndPoint is System.Net.IPEndPoint)
            {
                listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            }

            listener.Bind(uri.EndPoint);
            if (uri.EndPoint is UnixDomainSocketEndPoint bound)
            {
                // Owner only, as the monitor's socket, whatever the umask. Before listen(2): until then a connect is
                // refused anyway, so there is no moment when another user could hand this process a guest.
                File.SetUnixFileMode(bound.ToString()!, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            listener.Listen(1);
            return listener;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            listener.Dispose();
            throw new MigrationFailedException($"cannot listen on {uri.Text}: {e.Message}", e);
        }
        catch (SocketException e)
        {
            listener.Dispose();
            throw new MigrationFailedException($"cannot listen on {uri.Text}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Waits for the source on <paramref name="listener"/> and receives the whole migration. Throws when the
    /// migration failed before the guest started here (every failure, whatever raised it, as a
    /// <see cref="MigrationFailedException"/> or <see cref="MigrationStreamException"/>); returns normally once the
    /// guest runs here, even if the migration broke afterwards (status postcopy-paused, the guest kept).
    /// </summary>
    public void Run(Socket listener)
    {
        try
        {
            while (!RunOnce(listener))
            {
                // That connection was not the migration; wait for the next.
            }
        }
        finally
        {
            firstRunDone.Set();
        }
    }

    /// <summary>One accepted connection; false when it left before it said anything (then nothing has changed here).</summary>
    private bool RunOnce(Socket listener)
    {
        using MigrationConnection connection = AcceptSource(listener);
        using var returnPath = liveReturnPath = new ReturnPathWriter(connection.Writer);
        log.Information("incoming migration: source connected");
        try
        {
            Receive(listener, connection, returnPath);
        }
        catch (NotTheSourceException e)
        {
            log.Warning("incoming migration: dropped a connection: {Message}; still waiting for the source", e.Message);
            return false;
        }
        catch (Exception e) when (phase.GuestRunsHere() && postcopy!.IsComplete)
        {
            // Every page is here and Complete went out: the migration is over, whatever the source does next.
            log.Warning("incoming migration: after completion: {Message}", Describe(e));
        }
        catch (Exception e) when (phase.GuestRunsHere())
        {
            // After the switchover the guest is ours: keep it, keep the process, report the pause. A protocol error
            // from here on is the source's problem, never a reason to drop the only running copy of the guest.
            string why = PreemptCause() is { } failure
                ? $"the postcopy preempt channel broke: {failure}"
                : e is IOException ? $"the postcopy connection broke: {Describe(e)}" : Describe(e);
            // What the placement worker holds is placed first: once paused, nothing more is placed until a recovery.
            placer?.Stop();
            postcopy!.Pause();
            SetStatus(MigrationStatus.PostcopyPaused, why);
            TrySendError(returnPath, why);
            log.Error("postcopy paused: {Message}; the guest keeps running here and waits for missing pages", why);
        }
        catch (Exception e)
        {
            string? preemptCause = PreemptCause();
            string why = interrupted
                ? "the destination was stopped while it received the migration"
                : preemptCause is not null ? $"the postcopy preempt channel failed: {preemptCause}" : Describe(e);
            SetStatus(MigrationStatus.Failed, why);
            TrySendError(returnPath, why);
            throw e is MigrationFailedException or MigrationStreamException && preemptCause is null && !interrupted ? e : new MigrationFailedException(why, e);
        }
        finally
        {
            current = null;

            // Before the userfaultfd goes: nothing may be placed after it. A preempt thread that would not stop may
            // still place: then the userfaultfd and its zero buffer stay (leaked) rather than be freed under it.
            bool placementStopped = (preempt?.Stop() ?? true) & (placer?.Stop() ?? true);
            if (postcopy is { State: not PostcopyState.Paused } && placementStopped)
            {
                postcopy.Dispose();
            }

            preempt?.Dispose();
            placer?.Dispose();
            placer = null;
        }

        return true;
    }

    /// <summary>
    /// The machine is going away (quit, SIGTERM, SIGINT): a wait for the source, or for its next record, ends now
    /// rather than when the peer feels like it.
    /// </summary>
    public void Interrupt()
    {
        interrupted = true;
        current?.Abort();
        recoveryListener?.Dispose();
        Socket? waiting = candidate;
        try
        {
            waiting?.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already gone.
        }
    }

    /// <summary>
    /// Accepts connections until one starts talking: a connection that closes at once or sends nothing within
    /// <see cref="MigrationTimeouts.Header"/> (a port scan, a stray client) is dropped and the wait goes on. The
    /// first one that sends a byte is the migration; its header is checked by <see cref="Receive"/>.
    /// </summary>
    private MigrationConnection AcceptSource(Socket listener)
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                throw new MigrationFailedException(interrupted ? "the destination was stopped while it waited for the source" : $"accepting the migration connection failed: {e.Message}", e);
            }

            candidate = socket;
            string? dropped = null;
            long from = Stopwatch.GetTimestamp();
            while (dropped is null)
            {
                if (interrupted)
                {
                    socket.Dispose();
                    throw new MigrationFailedException("the destination was stopped while it waited for the source");
                }

                try
                {
                    if (socket.Poll(100_000, SelectMode.SelectRead))
                    {
                        if (socket.Available > 0)
                        {
                            break;
                        }

                        dropped = "it closed without sending anything";
                    }
                    else if (Stopwatch.GetElapsedTime(from) > timeouts.Header)
                    {
                        dropped = $"it sent nothing within {timeouts.Header.TotalSeconds:0.#} s";
                    }
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    dropped = e.Message;
                }
            }

            candidate = null;
            if (dropped is not null)
            {
                log.Warning("incoming migration: dropped a connection that is not a migration ({Why}); still waiting for the source", dropped);
                socket.Dispose();
                continue;
            }

            MigrationConnection connection;
            try
            {
                // With TLS, a peer whose certificate does not verify is refused before any record is read, and the
                // wait goes on (it was not this migration's source).
                connection = MigrationConnection.Adopt(socket, tlsSettings?.Invoke());
            }
            catch (Exception e) when (!interrupted)
            {
                // Whatever went wrong in the handshake, it was this connection's fault, not the migration's.
                log.Warning("incoming migration: refused a connection: {Message}; still waiting for the source", e.Message);
                socket.Dispose();
                continue;
            }

            connection.SetTimeouts(timeouts.Header, timeouts.Write);
            current = connection;
            if (interrupted)
            {
                connection.Abort();
            }

            return connection;
        }
    }

    /// <summary>A failure's message for the user: ours as they are, anything unforeseen with its type.</summary>
    private static string Describe(Exception e) =>
        e is MigrationStreamException or MigrationFailedException or InvalidDataException or IOException or Linux.LinuxException or UserfaultfdException
            ? e.Message
            : $"{e.Message} ({e.GetType().Name})";

    /// <summary>Tears down a postcopy left paused (the machine is going away): blocked vCPUs are woken.</summary>
    public void Abort()
    {
        if (preempt?.Stop() ?? true)
        {
            postcopy?.Dispose();
        }
    }

    /// <summary>
    /// The receive thread's failure: was the preempt channel's the first (then it is the cause, and its message is
    /// returned)? Otherwise the main connection's failure is claimed as the first.
    /// </summary>
    private string? PreemptCause() =>
        Interlocked.CompareExchange(ref firstFailure, FailedFirstMain, FailedFirstNone) == FailedFirstPreempt ? preemptFailure : null;

    /// <summary>A socket nobody answers on is stale and replaced; a live one or any other kind of file is refused.</summary>
    private static void RemoveStaleSocket(string path, MigrationUri uri)
    {
        switch (Linux.PathStatus.KindOf(path))
        {
            case Linux.PathKind.Missing:
                return;
            case Linux.PathKind.Socket:
                using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
                {
                    try
                    {
                        probe.Connect(new UnixDomainSocketEndPoint(path));
                        throw new MigrationFailedException($"cannot listen on {uri.Text}: another process is listening there");
                    }
                    catch (SocketException)
                    {
                        File.Delete(path);
                        return;
                    }
                }

            default:
                throw new MigrationFailedException($"cannot listen on {uri.Text}: '{path}' exists and is not a socket");
        }
    }

    /// <summary>
    /// The header of the first connection that sent bytes. A peer whose bytes cannot begin the magic is not a vmm
    /// source (a service probe from a port scanner, a client at the wrong port): it is dropped and the wait goes on, so
    /// no stranger can end the migration before it starts. One that sends the magic is a vmm source, and a wrong
    /// version or a header cut short fails the migration as any corrupt stream does.
    /// </summary>
    private static void ReadSourceHeader(System.IO.Stream input, ReadOnlySpan<byte> alreadyRead)
    {
        Span<byte> header = stackalloc byte[StreamHeader.Size];
        alreadyRead.CopyTo(header);
        int got = alreadyRead.Length;
        try
        {
            got += input.ReadAtLeast(header[got..], header.Length - got, throwOnEndOfStream: false);
        }
        catch (IOException e) when (!StreamHeader.CouldStartWithMagic(header[..got]))
        {
            throw new NotTheSourceException($"it sent {got} bytes that do not start a vmm migration stream, then {e.Message}");
        }

        if (!StreamHeader.CouldStartWithMagic(header[..got]))
        {
            string start = PeerText.Name(string.Concat(header[..Math.Min(got, 8)].ToArray().Select(b => (char)b)));
            throw new NotTheSourceException($"it is not a vmm migration source (its first bytes \"{start}\" are not the stream header)");
        }

        StreamHeader.Read(input, header[..got]);
    }

    private void Receive(Socket listener, MigrationConnection connection, ReturnPathWriter returnPath)
    {
        clock.Restart();
        if (connection.Encrypted)
        {
            // On Linux a TLS client may judge our certificate only once the handshake is done: a client that refused it
            // then closes without a byte. That was not the migration's source; only a first byte says it is.
            int first;
            try
            {
                first = connection.InputStream.ReadByte();
            }
            catch (IOException e)
            {
                throw new NotTheSourceException($"it sent nothing after the TLS handshake: {e.Message}");
            }

            if (first < 0)
            {
                throw new NotTheSourceException("it closed right after the TLS handshake (did it refuse this side's certificate?)");
            }

            ReadSourceHeader(connection.InputStream, [(byte)first]);
        }
        else
        {
            ReadSourceHeader(connection.InputStream, []);
        }

        Record setup = connection.Reader.Read();

        // The header and Setup came within the header timeout; from here the source streams, and silence means broken.
        connection.SetTimeouts(timeouts.Read, timeouts.Write);
        if (setup.Type != RecordType.Setup)
        {
            throw new MigrationStreamException($"protocol error: the stream starts with {setup.Type}, not Setup");
        }

        RamLayout sourceLayout = RamLayout.Read(setup);
        RamBlock[] blocks = MatchLayout(sourceLayout);
        acceptedLayout = sourceLayout;
        returnPath.Send(RecordType.SetupAccepted);

        // Ready to start fast: vCPU threads parked, the switchover's code compiled while pages arrive.
        machine.PrepareIncomingGuest();
        machine.PrepareStateTransfer(message => log.Debug("{Message}", message));
        JitWarmUp.InBackground(
            () => JitWarmUp.Prepare(
                typeof(IncomingMigration), typeof(PostcopyDestination), typeof(PostcopyFaultThread), typeof(ReturnPathWriter), typeof(StateSection),
                typeof(DirtyBitmap), typeof(RamBlockRegistry), typeof(RamBlock), typeof(Userfaultfd), typeof(PageRecord), typeof(SharedPageRing), typeof(PreemptChannelReceiver), typeof(XbzrleEncoding), typeof(SparsePageEncoding), typeof(SparseExpansionBuffer), typeof(PlacementWorker)),
            message => log.Debug("{Message}", message));
        SetStatus(MigrationStatus.Active, null);

        // Pages that hold data here: a zero page only needs clearing where data was written before.
        DirtyBitmap[] hasData = [.. blocks.Select(b => new DirtyBitmap(b.MaxLength / PageSize))];
        var sections = new List<StateSection>();
        long stateBytes = 0;

        // Until the guest can run here, page data goes from the socket straight into guest memory (DirectTarget).
        connection.Reader.DirectPages = head => DirectTarget(head, blocks);

        // Switchover phase timestamps, for the debug log.
        long switchoverFrom = 0;
        long listenFrom = 0;
        long listenDone = 0;
        while (true)
        {
            // Answers to page requests waiting on the preempt channel go first (no-op before the guest runs here).
            preempt?.PlaceWaiting();
            Record record;
            try
            {
                record = connection.Reader.Read();
            }
            catch (MigrationStreamException) when (postcopy is { IsComplete: true })
            {
                // The source closes once it has our Complete: that is the end of a postcopy migration.
                return;
            }

            bytesReceived = (ulong)connection.Reader.BytesRead;
            if (!phase.Accepts(record.Type))
            {
                throw new MigrationStreamException(phase.Refusal(record.Type));
            }

            switch (record.Type)
            {
                case RecordType.Page when phase >= IncomingPhase.Listening:
                    // A sparse run is expanded into a buffer that stays in the cache and placed like any data run: by the
                    // placement worker when it has room, so this thread reads on meanwhile.
                    PageRecord.Parsed arrived = PageRecord.Read(record);
                    if (arrived.Sparse && placer is not null && placer.TryPost(arrived))
                    {
                        CountPage(arrived.Length, zero: false, sparse: true);
                        break;
                    }

                    PageRecord.Parsed posted = arrived.Sparse ? arrived.Expanded(sparseBuffer ??= new SparseExpansionBuffer()) : arrived;
                    if (posted.Shared is { } shared)
                    {
                        PlaceFromRing(postcopy!, posted, shared.Position, shared.Crc);
                        break;
                    }

                    postcopy!.Place(posted.BlockIndex, posted.Offset, posted.Length, posted.Zero, posted.Data);
                    sparseBuffer?.Reset();
                    CountPage(posted.Length, posted.Zero, sparse: arrived.Sparse);
                    break;

                case RecordType.Page:
                    // A delta changes what an earlier record put here: only while that is still what the source sent
                    // (a discard makes pages stale; from Listen on pages are placed whole).
                    PageRecord.Parsed page = PageRecord.Read(record, allowDelta: phase is IncomingPhase.Precopy or IncomingPhase.Advised);
                    if (page.Shared is not null)
                    {
                        throw new MigrationStreamException("protocol error: a shared-ring Page record before PostcopyListen (the ring carries only the postcopy push)");
                    }

                    WritePage(page, blocks, hasData, viaAlias: postcopy?.IsMinor(page.BlockIndex) == true);
                    CountPage(page.Length, page.Zero, sparse: page.Sparse);
                    break;

                case RecordType.PassEnd:
                    passes++;
                    break;

                case RecordType.State:
                    StateSection section = StateSection.Read(record);
                    stateBytes += section.Data.Length;
                    if (sections.Count == RecordLimits.MaxSections || stateBytes > RecordLimits.MaxStateBytes)
                    {
                        throw new MigrationStreamException($"corrupt migration stream: more than {RecordLimits.MaxSections} state sections or {RecordLimits.MaxStateBytes} bytes of state");
                    }

                    if (sections.Exists(s => s.Name == section.Name))
                    {
                        throw new MigrationStreamException($"corrupt migration stream: state section '{PeerText.Name(section.Name)}' appears twice");
                    }

                    sections.Add(section);
                    break;

                case RecordType.End:
                    StreamSeal.Check(record, connection.Reader);
                    machine.LoadState(sections);
                    returnPath.Send(RecordType.Complete);
                    machine.StartIncomingGuest();
                    SetStatus(MigrationStatus.Completed, null);
                    log.Information(
                        "incoming migration complete in {Ms} ms: {Pages} pages ({Zero} zero) over {Passes} passes; the guest runs here now",
                        clock.ElapsedMilliseconds, pagesReceived, zeroPages, passes);
                    return;

                case RecordType.PostcopyAdvise:
                    PayloadReader advise = record.Reader();
                    uint flags = advise.U32();
                    advise.End();
                    if ((flags & ~PostcopyAdviseFlags.Known) != 0)
                    {
                        throw new MigrationStreamException($"protocol error: PostcopyAdvise flags 0x{flags:x} include bits this version does not know");
                    }

                    if (!postcopyAllowed())
                    {
                        throw new MigrationFailedException("the source wants postcopy, but the postcopy-ram capability is not enabled on the destination");
                    }

                    bool minor = (flags & PostcopyAdviseFlags.MinorFaults) != 0 && minorFaultsAllowed();
                    phase = phase.After(record.Type);
                    postcopy = new PostcopyDestination(blocks, machine.Ram, returnPath, log, minor);
                    postcopy.Completed += () =>
                    {
                        // Raised on a thread that places pages (the receive thread, the preempt channel's) or on the
                        // fault thread: it must not block on the return path (ReturnPathWriter).
                        // The connection of the moment: after a recovery, not the one that advised.
                        liveReturnPath!.Post(RecordType.Complete);
                        SetStatus(MigrationStatus.Completed, null);
                    };
                    postcopy.Advise();
                    placer = new PlacementWorker(postcopy, log);

                    // Threads start now rather than in the downtime: starting one takes milliseconds here.
                    returnPath.StartSender();
                    // A shared ring needs the preempt channel (its memfd comes with it) and one host (a Unix socket).
                    // Not under TLS: the receive thread peeks at the channel's socket for whole records, which TLS hides.
                    bool preemptChannel = (flags & PostcopyAdviseFlags.Preempt) != 0 && preemptAllowed() && !connection.Encrypted;
                    bool sharedRing = preemptChannel && (flags & PostcopyAdviseFlags.SharedMemory) != 0 && sharedMemoryAllowed()
                        && listener.AddressFamily == AddressFamily.Unix;
                    byte[]? token = preemptChannel ? StartPreemptChannel(listener, connection, postcopy, sharedRing) : null;
                    returnPath.SendAdviseAccepted(token, sharedRing);
                    break;

                case RecordType.PostcopyName:
                    PayloadReader name = record.Reader();
                    Guid named = new(name.Bytes(16));
                    name.End();
                    if (migrationName is not null)
                    {
                        throw new MigrationStreamException("protocol error: a second PostcopyName record");
                    }

                    migrationName = named;
                    break;

                case RecordType.PostcopyDiscard:
                    (int blockIndex, List<(ulong Offset, ulong Length)> ranges) = DiscardRecord.Read(record);
                    switchoverFrom = switchoverFrom == 0 ? Stopwatch.GetTimestamp() : switchoverFrom;
                    RequirePostcopy(record.Type).Discard(blockIndex, ranges);
                    phase = phase.After(record.Type);
                    break;

                case RecordType.PostcopyDiscardSync:
                    // The source's guest still runs and waits for this before it stops: the discards so far are done.
                    record.Reader().End();
                    RequirePreemptChannel();
                    RequirePostcopy(record.Type).PreDiscardDone();
                    phase = phase.After(record.Type);
                    returnPath.SendDiscarded(preempt?.Ring is not null);
                    log.Debug(
                        "postcopy pre-discard applied in {Us:F0} us, before the source stops",
                        switchoverFrom == 0 ? 0 : Stopwatch.GetElapsedTime(switchoverFrom).TotalMicroseconds);
                    switchoverFrom = 0;
                    break;

                case RecordType.PostcopyListen:
                    record.Reader().End();
                    RequirePreemptChannel();
                    listenFrom = Stopwatch.GetTimestamp();
                    RequirePostcopy(record.Type).Listen();
                    phase = phase.After(record.Type);
                    listenDone = Stopwatch.GetTimestamp();
                    break;

                case RecordType.PostcopyRun:
                    StreamSeal.Check(record, connection.Reader);
                    PostcopyDestination running = RequirePostcopy(record.Type);
                    machine.LoadState(sections);
                    long loaded = Stopwatch.GetTimestamp();

                    // From here the guest may run here: a failure pauses the migration and keeps it.
                    phase = phase.After(record.Type);
                    long runningAt = machine.StartIncomingGuest();

                    // Sent directly: the return path is still empty (the guest has only just started), so this
                    // cannot block: no hand-off to the sender thread, and the status event (monitor clients) after
                    // it. It says when the vCPUs were released: the end of the downtime.
                    returnPath.SendRunning(HostClock.ToNanoseconds(runningAt));
                    preempt?.StartPlacing();
                    SetStatus(MigrationStatus.PostcopyActive, null);
                    running.Running();
                    log.Debug(
                        "postcopy switchover (destination): discard {Discard:F0} us, listen {Listen:F0} us, state {State:F0} us, start and say running {Start:F0} us",
                        switchoverFrom == 0 ? 0 : Stopwatch.GetElapsedTime(switchoverFrom, listenFrom).TotalMicroseconds,
                        Stopwatch.GetElapsedTime(listenFrom, listenDone).TotalMicroseconds,
                        Stopwatch.GetElapsedTime(listenDone, loaded).TotalMicroseconds,
                        Stopwatch.GetElapsedTime(loaded, runningAt).TotalMicroseconds);
                    log.Information("postcopy: the guest runs here after {Ms} ms; pages follow on demand", clock.ElapsedMilliseconds);
                    break;

                case RecordType.PostcopyPushDone:
                    record.Reader().End();
                    phase = phase.After(record.Type);

                    // What is missing is recounted next: the records handed to the placement worker must be in.
                    placer?.Drain();
                    RequirePostcopy(record.Type).PushDone();
                    break;

                default:
                    throw new MigrationStreamException($"protocol error: unexpected {record.Type} record from the source");
            }

        }
    }

    /// <summary>
    /// The source asked for a preempt channel and this side agreed: accept it on the migration listener, in the
    /// background (the source connects once it has our answer). Returns the token the source must present.
    /// </summary>
    private byte[] StartPreemptChannel(Socket listener, MigrationConnection connection, PostcopyDestination destination, bool sharedRing)
    {
        byte[] token = Guid.NewGuid().ToByteArray();
        preempt = new PreemptChannelReceiver(
            listener,
            token,
            log,
            page =>
            {
                destination.Place(page.BlockIndex, page.Offset, page.Length, page.Zero, page.Data);
                CountPage(page.Length, page.Zero);
            },
            failure =>
            {
                if (destination.IsComplete)
                {
                    return;
                }

                // The main connection goes down with it: the receive thread then pauses (or fails) the migration,
                // naming this as the cause unless the main connection had failed first.
                preemptFailure = failure;
                if (Interlocked.CompareExchange(ref firstFailure, FailedFirstPreempt, FailedFirstNone) == FailedFirstNone)
                {
                    log.Warning("incoming migration: the postcopy preempt channel failed: {Message}", failure);
                }

                connection.Abort();
            },
            sharedRing,
            timeouts.Read);
        preempt.Start();
        return token;
    }

    /// <summary>Before the switchover: the preempt channel the source asked for must be here, and still open.</summary>
    private void RequirePreemptChannel()
    {
        if (preempt is not { } channel)
        {
            return;
        }

        if (!channel.WaitAttached(PreemptAttachTimeout))
        {
            throw new MigrationFailedException($"the source did not open the postcopy preempt channel it asked for within {PreemptAttachTimeout.TotalSeconds:F0} s");
        }

        if (!channel.IsAlive)
        {
            throw new MigrationFailedException("the postcopy preempt channel closed before the switchover");
        }
    }

    /// <summary>
    /// A push run whose data is in the shared ring: checked (position, CRC), placed straight from the ring, and then
    /// released to the source, whatever became of it (a dropped page frees its room too).
    /// </summary>
    private void PlaceFromRing(PostcopyDestination destination, PageRecord.Parsed page, ulong position, uint crc)
    {
        SharedPageRing ring = preempt?.Ring
            ?? throw new MigrationStreamException("protocol error: a shared-ring Page record, but no shared ring was agreed");
        ReadOnlySpan<byte> data = ring.Read(position, page.Length, crc);
        destination.Place(page.BlockIndex, page.Offset, page.Length, zero: false, data);
        ring.Release(position + page.Length);
        CountPage(page.Length, zero: false, fromRing: true);
    }

    private PostcopyDestination RequirePostcopy(RecordType type) =>
        postcopy ?? throw new MigrationStreamException($"protocol error: {type} without PostcopyAdvise");

    private void CountPage(ulong length, bool zero, bool fromRing = false, bool sparse = false)
    {
        ulong count = Math.Max(1, length / PageSize);
        lock (statsGate)
        {
            pagesReceived += count;
            zeroPages += zero ? count : 0;
            sharedPages += fromRing ? count : 0;
            sparsePages += sparse ? count : 0;
        }
    }

    /// <summary>Maps the source's blocks onto ours by name, or refuses with every difference listed.</summary>
    private RamBlock[] MatchLayout(RamLayout source)
    {
        IReadOnlyList<string> problems = source.Mismatches(RamLayout.Of(machine.Ram));
        if (problems.Count > 0)
        {
            throw new MigrationFailedException($"the source's RAM layout does not match this machine: {string.Join("; ", problems)}");
        }

        var blocks = new RamBlock[source.Blocks.Count];
        for (int i = 0; i < blocks.Length; i++)
        {
            RamBlockDescriptor remote = source.Blocks[i];
            RamBlock local = machine.Ram.FindByName(remote.Name)!;
            if (local.UsedLength != remote.UsedLength)
            {
                machine.ResizeRamBlock(remote.Name, remote.UsedLength);
            }

            blocks[i] = local;
        }

        return blocks;
    }

    /// <summary>
    /// Where the data of a Page record with this head may be read to directly (<see cref="RecordReader.DirectPages"/>):
    /// the span <see cref="WritePage"/> would copy it into, while no vCPU can run on guest memory here (before
    /// PostcopyListen) and the phase takes a Page. Anything else — a zero or shared-ring record, a place outside the
    /// block, a Page the phase refuses, postcopy placement — is read into the reader's buffer and handled as before,
    /// so its checksum is verified before anything acts on it and the errors stay the same. A direct record whose
    /// checksum fails has written guest memory no guest will run on: the migration fails before PostcopyRun.
    /// </summary>
    private Span<byte> DirectTarget(ReadOnlySpan<byte> head, RamBlock[] blocks)
    {
        IncomingPhase now = phase;
        if (now >= IncomingPhase.Listening || !now.Accepts(RecordType.Page) || PageRecord.DataHead(head) is not { } page
            || page.BlockIndex >= blocks.Length)
        {
            return default;
        }

        RamBlock block = blocks[page.BlockIndex];
        if (page.Length == 0 || page.Length % PageSize != 0 || page.Offset % PageSize != 0 || page.Offset > block.UsedLength || page.Length > block.UsedLength - page.Offset)
        {
            return default;
        }

        return postcopy?.IsMinor(page.BlockIndex) == true
            ? block.GetAliasSpan(page.Offset, (int)page.Length)
            : block.GetSpan(page.Offset, (int)page.Length);
    }

    /// <summary>
    /// Precopy: plain writes into guest RAM, which no vCPU runs on yet. A block headed for MINOR-fault postcopy is
    /// written through its alias mapping: the content goes into the page cache while the primary mapping (the guest's)
    /// stays unmapped, so after the switchover the first touch of each page is a minor fault that the fault thread
    /// resolves locally (CONTINUE) if the page is still valid, or fetches if it went stale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private static void WritePage(PageRecord.Parsed page, RamBlock[] blocks, DirtyBitmap[] hasData, bool viaAlias)
    {
        if (page.BlockIndex >= blocks.Length)
        {
            throw new MigrationStreamException($"corrupt migration stream: page for block index {page.BlockIndex}, but the layout has {blocks.Length} blocks");
        }

        RamBlock block = blocks[page.BlockIndex];
        if (page.Length == 0 || page.Length % PageSize != 0 || page.Offset % PageSize != 0 || page.Offset > block.UsedLength || page.Length > block.UsedLength - page.Offset)
        {
            throw new MigrationStreamException($"corrupt migration stream: page [0x{page.Offset:x}, +0x{page.Length:x}) is outside block '{block.Name}'");
        }

        DirtyBitmap data = hasData[page.BlockIndex];
        ulong first = page.Offset / PageSize;
        ulong count = page.Length / PageSize;
        if (page.Zero)
        {
            for (ulong p = first; p < first + count; p++)
            {
                if (data.TestAndClear(p))
                {
                    (viaAlias ? block.GetAliasSpan(p * PageSize, (int)PageSize) : block.GetSpan(p * PageSize, (int)PageSize)).Clear();
                }
            }
        }
        else if (page.Delta)
        {
            // Each delta was made against the bytes the source last sent for its page, which are here only if a data
            // record (or an earlier delta) put them here; a page never received, or last received as a zero page, is
            // not what the source encoded against. The record's CRC was verified before it was parsed.
            ReadOnlySpan<byte> deltas = page.Data;
            for (ulong p = first; p < first + count; p++)
            {
                if (!data.IsSet(p))
                {
                    throw new MigrationStreamException($"protocol error: an XBZRLE delta for page 0x{p * PageSize:x} of block '{block.Name}', which holds no data received in this migration");
                }

                int length = deltas.Length >= PageRecord.DeltaLengthBytes ? System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(deltas) : -1;
                if (length < 0 || length > deltas.Length - PageRecord.DeltaLengthBytes)
                {
                    throw new MigrationStreamException($"corrupt migration stream: the deltas of a Page record end before its {count} pages do");
                }

                XbzrleEncoding.Apply(deltas.Slice(PageRecord.DeltaLengthBytes, length), viaAlias ? block.GetAliasSpan(p * PageSize, (int)PageSize) : block.GetSpan(p * PageSize, (int)PageSize));
                deltas = deltas[(PageRecord.DeltaLengthBytes + length)..];
            }

            if (!deltas.IsEmpty)
            {
                throw new MigrationStreamException($"corrupt migration stream: {deltas.Length} unexpected trailing bytes after the deltas of a Page record");
            }
        }
        else if (page.Sparse)
        {
            // Decoded straight into guest memory (no vCPU runs on it yet); the record's CRC was verified first. A page
            // holding no data received is all zeros here (as the zero pages above assume): only its runs are written,
            // so most of a fresh page is never touched.
            ReadOnlySpan<byte> encodings = page.Data;
            for (ulong p = first; p < first + count; p++)
            {
                Span<byte> target = viaAlias ? block.GetAliasSpan(p * PageSize, (int)PageSize) : block.GetSpan(p * PageSize, (int)PageSize);
                ReadOnlySpan<byte> encoding = SparsePageEncoding.Next(ref encodings, count);
                if (data.IsSet(p))
                {
                    SparsePageEncoding.Decode(encoding, target);
                }
                else
                {
                    SparsePageEncoding.DecodeOntoZeros(encoding, target);
                }
            }

            SparsePageEncoding.RequireEnd(encodings);
            data.SetRange(first, count);
        }
        else if (page.Placed)
        {
            // Already read into place by the reader (DirectTarget), its checksum verified.
            data.SetRange(first, count);
        }
        else
        {
            FreshPageCopy.Copy(page.Data, viaAlias ? block.GetAliasSpan(page.Offset, (int)page.Length) : block.GetSpan(page.Offset, (int)page.Length));
            data.SetRange(first, count);
        }
    }

    private void SetStatus(MigrationStatus newStatus, string? message)
    {
        lock (statsGate)
        {
            status = newStatus;
            error = message;
        }

        StatusChanged?.Invoke(newStatus);
    }

    private void TrySendError(ReturnPathWriter returnPath, string message)
    {
        try
        {
            returnPath.SendError(message);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
            log.Debug("could not tell the source about the failure: {Message}", e.Message);
        }
    }
}
