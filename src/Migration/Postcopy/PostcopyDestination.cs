using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Serilog;
using Vmm.Linux.Userfaultfd;
using Vmm.Ram;

namespace Vmm.Migration.Postcopy;

/// <summary>
/// The destination side of postcopy (DESIGN §5): which host pages are here (received), which were asked for
/// (requested), placing arriving pages atomically with userfaultfd, and deciding when every page is here.
/// The fault path itself — fault → local zero page or page request — is <see cref="PostcopyFaultThread"/>.
/// </summary>
/// <remarks>
/// Rules from the seeds: a page is placed at most once (received bitmap, EEXIST makes a duplicate harmless); a
/// placement onto a range that is no longer registered (remapped, or beyond a shrunk block: ENOENT, EINVAL on
/// older kernels) wakes whoever waits there and drops the page, which then counts as received.
/// <para>
/// Two placement modes, chosen per block at ADVISE (seed 001). MISSING: a stale page is punched out of memory and
/// placed with COPY/ZEROPAGE. MINOR (shared and hugetlbfs blocks, when both sides have postcopy-minor-faults and the
/// kernel has the feature): a stale page keeps its memory but leaves the primary mapping's page tables; an arriving
/// page is written through the alias mapping and mapped with CONTINUE; a fault on a page that is here (received,
/// clean) is resolved locally with CONTINUE and never costs a request.
/// </para>
/// </remarks>
public sealed unsafe class PostcopyDestination : IDisposable
{
    private const int PlacementRetries = 100;

    private readonly RamBlock[] blocks;
    private readonly BlockPages[] pages;
    /// <summary>The current connection's return path: a recovery replaces it (<see cref="Resume"/>).</summary>
    private volatile ReturnPathWriter returnPath;
    private readonly RamBlockRegistry registry;
    private readonly ILogger log;
    private readonly byte* zeroBuffer;
    private readonly ulong zeroBufferSize;
    private readonly bool minorFaultsWanted;

    // MINOR placement writes behind the primary mapping: a remap or shrink must not happen between the check of the
    // received bit and the CONTINUE, or the write could land in the fresh range after the guest wrote there.
    private readonly object minorPlacementGate = new();
    private Userfaultfd? uffd;
    private PostcopyFaultThread? faultThread;
    private long remaining;
    private int completed;
    private volatile bool running;
    private int disposed;

    public PostcopyDestination(RamBlock[] blocks, RamBlockRegistry registry, ReturnPathWriter returnPath, ILogger log, bool minorFaults = false)
    {
        this.blocks = blocks;
        this.registry = registry;
        this.returnPath = returnPath;
        this.log = log;
        minorFaultsWanted = minorFaults;
        pages = [.. blocks.Select(b => new BlockPages(b))];

        // COPY of zeros is how hugetlbfs places a zero page (it has no ZEROPAGE); one buffer of the largest page.
        zeroBufferSize = blocks.Max(b => b.PageSize);
        zeroBuffer = (byte*)NativeMemory.AlignedAlloc((nuint)zeroBufferSize, 4096);
        NativeMemory.Clear(zeroBuffer, (nuint)zeroBufferSize);
    }

    public PostcopyState State { get; private set; } = PostcopyState.None;

    /// <summary>Fault thread → placement latencies (p50/p99/max) and their sum, the vCPU block time.</summary>
    public FaultLatency Latency { get; } = new();

    public long Requests => Interlocked.Read(ref requests);

    /// <summary>Faults resolved here with no request: received zero pages, and (MINOR) received clean pages.</summary>
    public long LocalFaults => Interlocked.Read(ref localFaults);

    /// <summary>Of <see cref="LocalFaults"/>: those resolved with CONTINUE (MINOR blocks).</summary>
    public long LocalContinues => Interlocked.Read(ref localContinues);

    /// <summary>Host pages not valid here at LISTEN (the discard set): only these may ever cost a request.</summary>
    public long StalePages { get; private set; }

    /// <summary>Whether a block is placed with MINOR faults; false before ADVISE.</summary>
    public bool IsMinor(int blockIndex) => blockIndex >= 0 && blockIndex < pages.Length && pages[blockIndex].Minor;

    /// <summary>Blocks placed with MINOR faults.</summary>
    public int MinorBlocks => pages.Count(p => p.Minor);

    public long PagesPlaced => Interlocked.Read(ref pagesPlaced);

    public long DuplicatePages => Interlocked.Read(ref duplicatePages);

    public long DroppedPages => Interlocked.Read(ref droppedPages);

    /// <summary>Zero pages that arrived and were marked received without being mapped (<see cref="PlaceZeroLater"/>).</summary>
    public long ZeroPagesLeftUnmapped => Interlocked.Read(ref zeroPagesLeftUnmapped);

    public bool IsComplete => Volatile.Read(ref completed) != 0;

    /// <summary>Host pages still to come (query-migrate "remaining" on the destination).</summary>
    public long RemainingPages => Interlocked.Read(ref remaining);


    /// <summary>Raised once, on whichever thread received the last missing page.</summary>
    public event Action? Completed;

    private long requests;
    private long localFaults;
    private long localContinues;
    private long pagesPlaced;
    private long duplicatePages;
    private long droppedPages;
    private long zeroPagesLeftUnmapped;

    /// <summary>
    /// ADVISE: open a userfaultfd with what every block's backend needs for MISSING faults. Failure here is a clean
    /// refusal: nothing has been changed yet. Every page starts as received (valid from precopy) until discarded.
    /// </summary>
    public void Advise()
    {
        UffdFeatures required = UffdFeatures.None;
        UffdFeatures minorFeatures = UffdFeatures.None;
        foreach (RamBlock block in blocks)
        {
            required |= Userfaultfd.RequiredFeatures(block.Backend, UffdRegisterModes.Missing);
            if (minorFaultsWanted && SupportsMinor(block))
            {
                minorFeatures |= Userfaultfd.RequiredFeatures(block.Backend, UffdRegisterModes.Minor);
            }
        }

        // MINOR features are optional: a kernel without them gets MISSING-only postcopy for those blocks.
        Userfaultfd fd = uffd = Userfaultfd.Open(required, UffdFeatures.ThreadId | minorFeatures);
        foreach (BlockPages block in pages)
        {
            block.Received.SetRange(0, block.Block.UsedLength / block.Block.PageSize);
            block.Minor = minorFaultsWanted && SupportsMinor(block.Block)
                && (fd.Features & Userfaultfd.RequiredFeatures(block.Block.Backend, UffdRegisterModes.Minor)) != 0;
        }

        if (pages.Any(p => p.Minor))
        {
            registry.RangeReplacing += OnRangeReplacing;
        }

        // The fault thread starts now, not at LISTEN: starting a thread takes milliseconds here, and LISTEN is in the
        // downtime. Until then it only finds nothing to read (nothing is registered).
        faultThread = new PostcopyFaultThread(this, fd, log);
        log.Information(
            "postcopy: advised; {Modes}",
            string.Join(", ", pages.Select(p => $"{p.Block.Name}: {(p.Minor ? "MINOR faults" : "MISSING faults")}")));
        State = PostcopyState.Advise;
    }

    /// <summary>
    /// Host pages of a block not received, within its used length only (a block shrunk since ADVISE still has
    /// received bits past its end). Word-wise when the block is at full length: this runs during the downtime.
    /// </summary>
    private static long MissingPages(BlockPages block)
    {
        ulong used = block.Block.UsedLength / block.Block.PageSize;
        if (used == block.Received.PageCount)
        {
            return (long)(used - block.Received.CountSet());
        }

        long missing = 0;
        for (ulong page = 0; page < used; page++)
        {
            if (!block.Received.IsSet(page))
            {
                missing++;
            }
        }

        return missing;
    }

    /// <summary>MINOR faults need the page cache (shared, hugetlbfs) and a second mapping to fill it through.</summary>
    private static bool SupportsMinor(RamBlock block) =>
        block.Backend is RamBackend.Shared or RamBackend.Hugetlbfs && block.AliasAddress != 0;

    /// <summary>DISCARD: these byte ranges are stale here; drop the memory and forget we had them.</summary>
    public void Discard(int blockIndex, IReadOnlyList<(ulong Offset, ulong Length)> ranges)
    {
        RequireState(PostcopyState.Advise, PostcopyState.Discard);
        State = PostcopyState.Discard;
        BlockPages block = pages[CheckIndex(blockIndex)];
        ulong pageSize = block.Block.PageSize;
        foreach ((ulong offset, ulong length) in ranges)
        {
            // Whole host pages: a 4 KiB-stale range of a huge page makes the whole huge page stale.
            ulong start = offset / pageSize * pageSize;
            ulong end = Math.Min((offset + length + pageSize - 1) / pageSize * pageSize, block.Block.UsedLength);
            if (length == 0 || start >= end)
            {
                continue;
            }

            block.Received.ClearRange(start / pageSize, (end - start) / pageSize);
            if (block.Minor)
            {
                // Keep the memory (a refetch overwrites it through the alias); hide it from the guest until then.
                block.Block.UnmapFromPrimary(start, end - start);
            }
            else
            {
                block.Block.Discard(start, end - start);
            }
        }
    }

    /// <summary>
    /// PostcopyDiscardSync (valid only between ADVISE and LISTEN, like the discards it confirms): the pre-discard is
    /// applied. From here until the guest starts nothing writes guest memory (precopy is over), so the blocks are
    /// registered now, while the source's guest still runs, rather than at LISTEN in the downtime.
    /// </summary>
    public void PreDiscardDone()
    {
        RequireState(PostcopyState.Advise, PostcopyState.Discard);
        Register();
    }

    /// <summary>
    /// Guest memory is registered with userfaultfd (from PostcopyDiscardSync, or LISTEN): no precopy page may be
    /// written any more (the write would fault into our own userfaultfd and wait for an answer on the stream this
    /// thread should be reading).
    /// </summary>
    public bool Registered { get; private set; }

    /// <summary>LISTENING: make sure every block's used range is registered, and count what is missing.</summary>
    public void Listen()
    {
        RequireState(PostcopyState.Advise, PostcopyState.Discard);
        Register();

        // A loop, not LINQ: this runs in the downtime, where compiling a generic instantiation costs ~0.5 ms here.
        long missing = 0;
        foreach (BlockPages block in pages)
        {
            missing += MissingPages(block);
        }

        remaining = missing;
        StalePages = missing;
        registry.BlockResized += OnBlockResized;
        State = PostcopyState.Listening;
    }

    /// <summary>Registers every block's used range with userfaultfd, once; the fault thread then finds its faults.</summary>
    private void Register()
    {
        if (Registered)
        {
            return;
        }

        foreach (BlockPages block in pages)
        {
            // MINOR blocks also register MISSING: pages never written here (zero, or never sent) are not in the page cache.
            uffd!.Register(
                block.Block.HostAddress,
                block.Block.UsedLength,
                block.Minor ? UffdRegisterModes.Missing | UffdRegisterModes.Minor : UffdRegisterModes.Missing);
        }

        Registered = true;
    }

    /// <summary>
    /// RUNNING: the guest has been started here. Completion is only declared from here on, so the source always
    /// sees PostcopyRunning before Complete.
    /// </summary>
    public void Running()
    {
        State = PostcopyState.Running;
        running = true;
        log.Information("postcopy: running here, {Missing} host pages to come", StalePages);
        TryComplete();
    }

    /// <summary>
    /// The source has pushed everything (PostcopyPushDone): recount what is missing from the received bitmaps, the
    /// ground truth. Nothing missing: complete (the running count should agree; if it drifted, say so). Pages missing
    /// that nobody has asked for: ask now.
    /// </summary>
    public void PushDone()
    {
        long missing = pages.Sum(MissingPages);

        // Another thread may have set a page's received bit and not yet counted it: give it a moment.
        long counted = Interlocked.Read(ref remaining);
        for (int wait = 0; missing == 0 && counted != 0 && wait < 100; wait++)
        {
            Thread.Sleep(0);
            counted = Interlocked.Read(ref remaining);
        }

        if (missing == 0 && counted != 0)
        {
            log.Warning("postcopy: every page is here but {Counted} were still counted missing; completing", counted);
            Interlocked.CompareExchange(ref remaining, 0, counted);
            TryComplete();
        }
        else if (missing == 0)
        {
            // Normally completed already; after a recovery the last page may have come before the guest was marked
            // running again. Completing twice is a no-op.
            TryComplete();
        }
        else if (missing > 0)
        {
            // Normally the answers to requests in flight. Anything not asked for yet would never come on its own now:
            // ask for it (the source answers every request), so the migration always finishes.
            long asked = 0;
            for (int index = 0; index < pages.Length; index++)
            {
                BlockPages block = pages[index];
                for (ulong page = 0; page < block.Block.UsedLength / block.Block.PageSize; page++)
                {
                    if (!block.Received.IsSet(page) && !block.Requested.TestAndSet(page))
                    {
                        returnPath.PostPageRequest(index, page * block.Block.PageSize, block.Block.PageSize);
                        asked++;
                    }
                }
            }

            if (asked > 0)
            {
                log.Warning("postcopy: the push is done but {Missing} host pages are missing here; requested {Asked} of them", missing, asked);
            }
        }
    }

    /// <summary>
    /// The connection broke while the guest runs here: missing pages wait. Faults keep being read and their pages
    /// marked requested; the requests that cannot go out now are sent again by <see cref="Resume"/>.
    /// </summary>
    public void Pause() => State = PostcopyState.Paused;

    /// <summary>Each block's received bitmap and its used length in host pages: what a recovery tells the source.</summary>
    public IReadOnlyList<(DirtyBitmap Received, ulong HostPages)> ReceivedBitmaps() =>
        [.. pages.Select(p => (p.Received, p.Block.UsedLength / p.Block.PageSize))];

    /// <summary>
    /// A recovered connection: requests go to <paramref name="newReturnPath"/> from now on, and every page asked for
    /// and still missing (asked before the break, or by a vCPU that faulted while paused) is asked for again, through
    /// its sender thread, ahead of anything the push sends. Returns how many.
    /// </summary>
    public long Resume(ReturnPathWriter newReturnPath)
    {
        returnPath = newReturnPath;
        State = PostcopyState.Running;

        // The guest ran here before the pause, even if the connection broke before Running() was reached (a cut
        // right at the switchover): completion must be possible now.
        running = true;
        long asked = 0;
        for (int index = 0; index < pages.Length; index++)
        {
            BlockPages block = pages[index];
            ulong used = block.Block.UsedLength / block.Block.PageSize;
            ulong next = 0;
            while (block.Requested.TryFindNextSet(next, out ulong page) && page < used)
            {
                next = page + 1;
                if (!block.Received.IsSet(page))
                {
                    newReturnPath.PostPageRequest(index, page * block.Block.PageSize, block.Block.PageSize);
                    asked++;
                }
            }
        }

        // Everything may have arrived before the cut, with only Complete lost: then this is the end.
        TryComplete();
        return asked;
    }

    /// <summary>
    /// Places an arriving run of whole host pages (receive thread): data, or zeros when <paramref name="zero"/>.
    /// Never overwrites a page that is here already; pages beyond a block shrunk here are dropped.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public void Place(int blockIndex, ulong offset, ulong length, bool zero, ReadOnlySpan<byte> data)
    {
        RequireWholePages(blockIndex, offset, length);
        BlockPages block = pages[blockIndex];
        ulong pageSize = block.Block.PageSize;
        if (!zero && (ulong)data.Length != length)
        {
            throw new Stream.MigrationStreamException(
                $"corrupt migration stream: postcopy page run [0x{offset:x}, +0x{length:x}) of '{block.Block.Name}' comes with 0x{data.Length:x} bytes of data");
        }

        ulong first = offset / pageSize;
        ulong count = length / pageSize;
        ulong index = 0;
        while (index < count)
        {
            ulong page = first + index;
            if (page * pageSize >= block.Block.UsedLength)
            {
                // Beyond a block shrunk here: the content is not needed (seed 000).
                Interlocked.Increment(ref droppedPages);
                index++;
                continue;
            }

            ReadOnlySpan<byte> content = zero ? default : data.Slice((int)(index * pageSize), (int)pageSize);
            if (block.Minor)
            {
                PlaceMinor(block, page, zero, content);
                index++;
                continue;
            }

            if (zero)
            {
                PlaceZeroLater(block, page);
                index++;
                continue;
            }

            if (block.Received.IsSet(page))
            {
                Interlocked.Increment(ref duplicatePages);
                index++;
                continue;
            }

            // The longest stretch from here that is missing: one COPY (or ZEROPAGE) places it all.
            ulong end = index + 1;
            while (end < count && (first + end) * pageSize < block.Block.UsedLength && !block.Received.IsSet(first + end))
            {
                end++;
            }

            index += PlaceMissingRun(block, page, end - index, data.Slice((int)(index * pageSize), (int)((end - index) * pageSize)));
        }
    }

    /// <summary>
    /// Refuses a run that is not whole host pages of an existing block, before it is placed (or handed to another
    /// thread to place).
    /// </summary>
    public void RequireWholePages(int blockIndex, ulong offset, ulong length)
    {
        RamBlock block = pages[CheckIndex(blockIndex)].Block;
        ulong pageSize = block.PageSize;
        if (length == 0 || length % pageSize != 0 || offset % pageSize != 0 || offset + length < offset || offset + length > block.MaxLength)
        {
            throw new Stream.MigrationStreamException(
                $"corrupt migration stream: postcopy page run [0x{offset:x}, +0x{length:x}) of '{block.Name}' is not whole 0x{pageSize:x}-byte host pages of the block");
        }
    }

    /// <summary>
    /// MISSING placement of <paramref name="count"/> missing host pages from <paramref name="page"/> with one ioctl.
    /// If the kernel places only part (a page appeared, the range changed), the rest goes one page at a time, so each
    /// page still gets its own outcome. Returns how many pages it dealt with (all of them).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private ulong PlaceMissingRun(BlockPages block, ulong page, ulong count, ReadOnlySpan<byte> data)
    {
        ulong pageSize = block.Block.PageSize;
        nint destination = block.Block.HostAddressOf(page * pageSize);
        if (count == 1)
        {
            PlacementResult single;
            fixed (byte* source = data)
            {
                single = PlaceWithRetry(block.Block, destination, pageSize, data.IsEmpty ? null : source);
            }

            Settle(block, page, destination, single);
            return 1;
        }

        PlacementResult result;
        fixed (byte* source = data)
        {
            result = PlaceOnce(block.Block, destination, count * pageSize, data.IsEmpty ? null : source);
        }

        ulong placed = result.Status == PlacementStatus.Placed ? count : result.Status == PlacementStatus.Partial ? result.Bytes / pageSize : 0;
        for (ulong i = 0; i < placed; i++)
        {
            Settle(block, page + i, destination + (nint)(i * pageSize), new PlacementResult(PlacementStatus.Placed, pageSize));
        }

        for (ulong i = placed; i < count; i++)
        {
            PlaceMissingRun(block, page + i, 1, data.IsEmpty ? default : data.Slice((int)(i * pageSize), (int)pageSize));
        }

        return count;
    }

    /// <summary>
    /// A zero page for a MISSING block: nothing is mapped there (it was discarded, or never written), so a guest touch
    /// faults and finds it received, and <see cref="TryResolveLocally"/> maps the zero page then. Marking it received is
    /// all the placement it needs now; most zero pages are never touched before the migration ends (and with it the
    /// registration). Placing them here cost the receive thread 5–30 ms of ZEROPAGE per 256 MiB, on the push's critical
    /// path. A vCPU may already wait on the page: the received bit is set first and the requested bit read after it,
    /// while <see cref="Request"/> sets the requested bit first and reads the received bit after it, so at least one of
    /// the two sees the other and maps the page (the other's ZEROPAGE then finds it there: a harmless EEXIST).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private void PlaceZeroLater(BlockPages block, ulong page)
    {
        if (block.Received.TestAndSet(page))
        {
            Interlocked.Increment(ref duplicatePages);
            return;
        }

        if (block.Requested.IsSet(page))
        {
            nint destination = block.Block.HostAddressOf(page * block.Block.PageSize);
            Settle(block, page, destination, PlaceWithRetry(block.Block, destination, block.Block.PageSize, null), mayComplete: false);
        }
        else
        {
            Interlocked.Increment(ref zeroPagesLeftUnmapped);
        }

        if (Interlocked.Decrement(ref remaining) == 0)
        {
            TryComplete();
        }
    }

    /// <summary>
    /// MINOR placement: write the content through the alias mapping (the guest cannot see it yet: the primary
    /// mapping has no page-table entry there), then CONTINUE to map it and wake any vCPU waiting on it. Under the
    /// placement gate, so a remap or shrink never interleaves between the received check and the CONTINUE, and the
    /// page is marked received before the gate opens: a second copy of it (the push and the preempt channel place
    /// from two threads) must find it received, or its alias write would undo what the guest wrote since.
    /// </summary>
    private void PlaceMinor(BlockPages block, ulong page, bool zero, ReadOnlySpan<byte> data)
    {
        ulong pageSize = block.Block.PageSize;
        ulong offset = page * pageSize;
        PlacementResult result;
        lock (minorPlacementGate)
        {
            if (block.Received.IsSet(page) || offset >= block.Block.UsedLength)
            {
                Interlocked.Increment(ref duplicatePages);
                return;
            }

            Span<byte> target = block.Block.GetAliasSpan(offset, (int)pageSize);
            if (zero)
            {
                target.Clear();
            }
            else
            {
                FreshPageCopy.Copy(data, target);
            }

            result = ContinueWithRetry(block.Block.HostAddressOf(offset), pageSize);
            Settle(block, page, block.Block.HostAddressOf(offset), result, mayComplete: false);
        }

        // Completing raises events: never under the lock.
        TryComplete();
    }

    /// <summary>
    /// Fault thread: a fault on a page that is already received is resolved locally with no round trip — a MISSING
    /// fault means the page was zero and never written here (precopy skips writing zero pages), a MINOR fault that its
    /// content is in the page cache but not mapped. Returns false when the page must be requested.
    /// </summary>
    internal bool TryResolveLocally(int blockIndex, ulong page, bool minorFault, long faultTimestamp)
    {
        BlockPages block = pages[blockIndex];
        if (!block.Received.IsSet(page))
        {
            return false;
        }

        ulong pageSize = block.Block.PageSize;
        nint destination = block.Block.HostAddressOf(page * pageSize);

        // A MINOR fault on a received page: the page cache holds the right content, only the mapping is missing.
        // A MISSING fault on a received page: it was zero and never written here.
        PlacementResult result = minorFault
            ? ContinueWithRetry(destination, pageSize)
            : PlaceWithRetry(block.Block, destination, pageSize, null);
        if (result.Status == PlacementStatus.NotRegistered)
        {
            uffd!.Wake(destination, pageSize);
        }

        if (minorFault)
        {
            Interlocked.Increment(ref localContinues);
        }

        Interlocked.Increment(ref localFaults);
        Latency.Record(Stopwatch.GetTimestamp() - faultTimestamp);
        return true;
    }

    /// <summary>Fault thread: asks the source for a page, once; later faults on it just wait for the placement.</summary>
    internal void Request(int blockIndex, ulong page, long faultTimestamp)
    {
        BlockPages block = pages[blockIndex];
        Interlocked.CompareExchange(ref block.FaultTimestamps[page], faultTimestamp, 0);
        if (block.Requested.TestAndSet(page))
        {
            return;
        }

        // A zero page may have been marked received, and not mapped, since the caller looked (PlaceZeroLater, MISSING
        // blocks only): it is mapped here then, for no vCPU would ever be woken otherwise.
        if (!block.Minor && block.Received.IsSet(page))
        {
            Interlocked.Exchange(ref block.FaultTimestamps[page], 0);
            TryResolveLocally(blockIndex, page, minorFault: false, faultTimestamp);
            return;
        }

        Interlocked.Increment(ref requests);
        try
        {
            returnPath.RequestPage(blockIndex, page * block.Block.PageSize, block.Block.PageSize);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            // The connection broke (the receive thread pauses the migration): the page stays marked requested, and a
            // recovery asks for it again. The fault thread must live on to read the faults of the paused guest.
            log.Debug("postcopy: request for page {Page} of {Block} waits for a recovery: {Message}", page, block.Block.Name, e.Message);
        }

        // The page may have arrived between the fault and the request: then the answer will be a harmless duplicate.
    }

    /// <summary>Finds the block and host page of a faulting address; false for addresses outside guest RAM.</summary>
    internal bool TryLocate(nint address, out int blockIndex, out ulong page)
    {
        for (int i = 0; i < blocks.Length; i++)
        {
            if (blocks[i].TryGetOffsetOfHost(address, out ulong offset))
            {
                blockIndex = i;
                page = offset / blocks[i].PageSize;
                return true;
            }
        }

        blockIndex = -1;
        page = 0;
        return false;
    }

    private PlacementResult PlaceWithRetry(RamBlock block, nint destination, ulong length, byte* source)
    {
        for (int attempt = 0; ; attempt++)
        {
            PlacementResult result = PlaceOnce(block, destination, length, source);
            if (result.Status is PlacementStatus.Retry or PlacementStatus.Partial && attempt < PlacementRetries)
            {
                // EAGAIN: the address space is changing (a remap in progress); a partial copy means part is there.
                Thread.Yield();
                continue;
            }

            return result;
        }
    }

    /// <summary>One COPY (data, or zeros from the zero buffer on hugetlbfs, which has no ZEROPAGE) or ZEROPAGE.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private PlacementResult PlaceOnce(RamBlock block, nint destination, ulong length, byte* source)
    {
        Userfaultfd fd = uffd!;
        if (source is not null)
        {
            return fd.Copy(destination, (nint)source, length);
        }

        if (block.Backend != RamBackend.Hugetlbfs)
        {
            return fd.ZeroPage(destination, length);
        }

        // One huge page at a time from the one zeroed buffer.
        for (ulong done = 0; done < length; done += block.PageSize)
        {
            PlacementResult part = fd.Copy(destination + (nint)done, (nint)zeroBuffer, block.PageSize);
            if (!part.IsPlaced)
            {
                return done == 0 ? part : new PlacementResult(PlacementStatus.Partial, done + part.Bytes, part.Errno);
            }
        }

        return new PlacementResult(PlacementStatus.Placed, length);
    }

    private PlacementResult ContinueWithRetry(nint destination, ulong pageSize)
    {
        for (int attempt = 0; ; attempt++)
        {
            PlacementResult result = uffd!.Continue(destination, pageSize);
            if (result.Status is PlacementStatus.Retry or PlacementStatus.Partial && attempt < PlacementRetries)
            {
                Thread.Yield();
                continue;
            }

            return result;
        }
    }

    /// <summary>
    /// A MINOR block's range is about to be replaced with fresh memory (remap, shrink; vCPUs parked). Whatever has
    /// not arrived for it is no longer needed (seed 000): mark it received and dropped now, under the placement gate,
    /// so no alias write can refill the fresh range afterwards.
    /// </summary>
    private void OnRangeReplacing(RamBlock changing, ulong offset, ulong length)
    {
        int index = Array.IndexOf(blocks, changing);
        if (index < 0 || !pages[index].Minor)
        {
            return;
        }

        BlockPages block = pages[index];
        ulong pageSize = changing.PageSize;
        lock (minorPlacementGate)
        {
            for (ulong page = offset / pageSize; page < (offset + length + pageSize - 1) / pageSize; page++)
            {
                if (!block.Received.IsSet(page))
                {
                    Interlocked.Increment(ref droppedPages);
                    MarkReceived(block, page);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private void Settle(BlockPages block, ulong page, nint destination, PlacementResult result, bool mayComplete = true)
    {
        switch (result.Status)
        {
            case PlacementStatus.Placed:
                Interlocked.Increment(ref pagesPlaced);
                break;

            case PlacementStatus.AlreadyPresent:
                Interlocked.Increment(ref duplicatePages);
                break;

            case PlacementStatus.NotRegistered:
                // Remapped or shrunk under us: wake anyone waiting on the old page and drop the content (seed 000).
                uffd!.Wake(destination, block.Block.PageSize);
                Interlocked.Increment(ref droppedPages);
                if (result.Errno == Linux.Errno.EINVAL)
                {
                    log.Warning("postcopy: EINVAL placing page {Page} of {Block}; treating it as unregistered", page, block.Block.Name);
                }

                break;

            default:
                throw new IOException($"postcopy: placing page {page} of '{block.Block.Name}' failed: {result.Status} (errno {result.Errno})");
        }

        long faulted = Interlocked.Exchange(ref block.FaultTimestamps[page], 0);
        if (faulted != 0)
        {
            Latency.Record(Stopwatch.GetTimestamp() - faulted);
        }

        MarkReceived(block, page, mayComplete);
    }

    /// <summary>Sets the page's received bit; the last missing page completes the migration unless told not to yet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private void MarkReceived(BlockPages block, ulong page, bool mayComplete = true)
    {
        if (!block.Received.TestAndSet(page) && Interlocked.Decrement(ref remaining) == 0 && mayComplete)
        {
            TryComplete();
        }
    }

    private void TryComplete()
    {
        if (running && Interlocked.Read(ref remaining) == 0)
        {
            Complete();
        }
    }

    /// <summary>A block shrunk here during postcopy: its tail will never be needed, so it counts as received.</summary>
    private void OnBlockResized(RamBlock resized, ulong oldUsedLength)
    {
        int index = Array.IndexOf(blocks, resized);
        if (index < 0 || resized.UsedLength >= oldUsedLength)
        {
            return;
        }

        BlockPages block = pages[index];
        ulong pageSize = resized.PageSize;
        uffd!.Wake(resized.HostAddressOf(resized.UsedLength), oldUsedLength - resized.UsedLength);
        for (ulong page = resized.UsedLength / pageSize; page < oldUsedLength / pageSize; page++)
        {
            MarkReceived(block, page);
        }
    }

    private void Complete()
    {
        if (Interlocked.Exchange(ref completed, 1) != 0)
        {
            return;
        }

        State = PostcopyState.End;
        log.Information(
            "postcopy: every page received ({Placed} placed, {Unmapped} zero pages left to their first touch, {Requests} requested, {Local} faults resolved locally of which {Continue} with CONTINUE, {Dup} duplicates, {Dropped} dropped)",
            PagesPlaced, ZeroPagesLeftUnmapped, Requests, LocalFaults, LocalContinues, DuplicatePages, DroppedPages);
        Completed?.Invoke();
    }

    private int CheckIndex(int blockIndex) => blockIndex >= 0 && blockIndex < blocks.Length
        ? blockIndex
        : throw new Stream.MigrationStreamException($"corrupt migration stream: block index {blockIndex} (the layout has {blocks.Length} blocks)");

    private void RequireState(params PostcopyState[] allowed)
    {
        if (!allowed.Contains(State))
        {
            throw new Stream.MigrationStreamException($"protocol error: postcopy step out of order (destination state {State})");
        }
    }

    /// <summary>
    /// Stops the fault thread and unregisters every block (END, or giving up). Unregistering wakes every vCPU still
    /// blocked on a missing page, which matters when a paused postcopy is torn down with the machine.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        faultThread?.Dispose();
        registry.BlockResized -= OnBlockResized;
        registry.RangeReplacing -= OnRangeReplacing;
        if (uffd is { } fd)
        {
            foreach (RamBlock block in blocks)
            {
                try
                {
                    fd.Unregister(block.HostAddress, block.UsedLength);
                }
                catch (Linux.LinuxException e)
                {
                    log.Debug("postcopy: unregistering {Block}: {Message}", block.Name, e.Message);
                }
            }

            fd.Dispose();
        }

        NativeMemory.AlignedFree(zeroBuffer);
    }

    /// <summary>Per block: received and requested host pages, and when each requested page was first faulted on.</summary>
    private sealed class BlockPages(RamBlock block)
    {
        public RamBlock Block { get; } = block;

        /// <summary>Placed with MINOR faults (decided at ADVISE).</summary>
        public bool Minor { get; set; }

        // DirtyBitmap is the project's atomic bitmap; here one bit is one host page of this block.
        public DirtyBitmap Received { get; } = new(block.MaxLength / block.PageSize);

        public DirtyBitmap Requested { get; } = new(block.MaxLength / block.PageSize);

        public long[] FaultTimestamps { get; } = new long[block.MaxLength / block.PageSize];
    }
}
