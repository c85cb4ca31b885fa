using System.Runtime.CompilerServices;
using Vmm.Linux;
using Vmm.Migration.Stream;

namespace Vmm.Migration.Postcopy;

/// <summary>
/// The postcopy push's shared-memory ring (capability postcopy-shared-memory, same host only): a memfd the source
/// creates and passes to the destination with SCM_RIGHTS on the preempt channel. The source copies each run of page
/// data from guest memory into the ring and sends only a small Page record (block, offset, length, ring position,
/// CRC-32C of the data) on the main stream; the destination checks the CRC and places the run with UFFDIO_COPY
/// straight from the ring. A byte of guest memory is then copied twice on its way (into the ring, into the page)
/// instead of four times through a socket (into a buffer, into the kernel, out of it, into the page): on this host the
/// push is bound by the CPU, and those copies were a third of it.
/// </summary>
/// <remarks>
/// <para>
/// Layout: one 4 KiB header page, then the data area. Positions are byte counts since the start, never wrapped; a
/// run occupies [position mod size, + length) and never straddles the end (the source skips to the start instead).
/// The header holds what the destination has released (every byte below it may be overwritten), a futex word bumped
/// on every release, and the release the source sleeps for (0 when it does not sleep), so the destination makes a
/// futex call only when the source is actually waiting, and only once enough room is free.
/// </para>
/// <para>
/// Order: the source writes a run and then sends its record (a system call: a full barrier); the destination reads
/// the record before the run, and publishes a release only after placing. Everything the destination reads from the
/// ring is checked against the record first: the position must follow the previous run, lie within one ring's
/// length of what it released, and not straddle the end; the CRC must match.
/// </para>
/// </remarks>
public sealed unsafe class SharedPageRing : IDisposable
{
    /// <summary>The data area the source creates: room for several 1 MiB push batches in flight.</summary>
    public const ulong DefaultDataSize = 8 << 20;

    /// <summary>The largest ring a destination maps.</summary>
    public const ulong MaxDataSize = 256 << 20;

    public const ulong HeaderSize = 4096;

    private const ulong PageSize = 4096;

    private const int ReleasedOffset = 0;
    private const int SequenceOffset = 64;
    private const int WakeAtOffset = 128;

    /// <summary>How long one futex sleep lasts before the source rechecks that the destination is still there.</summary>
    private static readonly TimeSpan WaitSlice = TimeSpan.FromMilliseconds(50);

    private readonly FileDescriptor file;
    private readonly byte* mapping;
    private readonly ulong dataSize;
    private ulong produced;
    private ulong consumed;
    private int disposed;

    private SharedPageRing(FileDescriptor file, ulong dataSize)
    {
        this.file = file;
        this.dataSize = dataSize;
        mapping = (byte*)Mman.Map(0, HeaderSize + dataSize, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_SHARED, file.Value);
    }

    /// <summary>The memfd, to pass to the destination.</summary>
    public FileDescriptor Descriptor => file;

    /// <summary>Source: a new ring of <paramref name="dataSize"/> bytes (a multiple of 4 KiB).</summary>
    public static SharedPageRing Create(ulong dataSize = DefaultDataSize)
    {
        if (dataSize == 0 || dataSize % PageSize != 0 || dataSize > MaxDataSize)
        {
            throw new ArgumentOutOfRangeException(nameof(dataSize), $"a ring's data area is a multiple of 4 KiB up to {MaxDataSize >> 20} MiB");
        }

        FileDescriptor file = Memfd.Create("vmm-postcopy-ring", Memfd.MFD_ALLOW_SEALING);
        try
        {
            // Sealed at its size: neither side can then truncate it under the other's mapping (SIGBUS).
            Unistd.Ftruncate(file, (long)(HeaderSize + dataSize));
            Memfd.AddSeals(file, Memfd.F_SEAL_SHRINK | Memfd.F_SEAL_GROW | Memfd.F_SEAL_SEAL);
            return new SharedPageRing(file, dataSize);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Destination: maps the ring the source passed: a memfd sealed against shrinking (anything else could be cut
    /// short under the mapping, and placing from it would kill this process), of a checked size.
    /// </summary>
    public static SharedPageRing Attach(FileDescriptor file)
    {
        const uint FileTypeMask = 0xF000;
        const uint RegularFile = 0x8000;
        StatBuffer status = Stat.Fstat(file);
        if ((status.Mode & FileTypeMask) != RegularFile || (Memfd.GetSeals(file) & Memfd.F_SEAL_SHRINK) == 0)
        {
            throw new MigrationStreamException("protocol error: the source's shared ring is not a memfd sealed against shrinking");
        }

        long size = status.Size;
        if (size <= (long)HeaderSize || (ulong)size > HeaderSize + MaxDataSize || (ulong)size % PageSize != 0)
        {
            throw new MigrationStreamException($"protocol error: the source's shared ring is {size} bytes (a 4 KiB header and up to {MaxDataSize >> 20} MiB in 4 KiB pages)");
        }

        return new SharedPageRing(file, (ulong)size - HeaderSize);
    }

    private ref ulong Released => ref Unsafe.AsRef<ulong>(mapping + ReleasedOffset);

    private int* Sequence => (int*)(mapping + SequenceOffset);

    private ref ulong WakeAt => ref Unsafe.AsRef<ulong>(mapping + WakeAtOffset);

    private byte* Data => mapping + HeaderSize;

    /// <summary>
    /// Source: copies <paramref name="data"/> into the ring, waiting for room, and returns where it went and the
    /// CRC-32C of the copy (the bytes the destination will read). Before sleeping it calls
    /// <paramref name="beforeWait"/> (the records of runs already in the ring must reach the destination, or nothing is
    /// ever released); every 50 ms asleep it asks <paramref name="broken"/> whether to give up (a reason, or null).
    /// </summary>
    public (ulong Position, uint Crc) Write(ReadOnlySpan<byte> data, Action beforeWait, Func<string?> broken)
    {
        ulong length = (ulong)data.Length;
        // At most half the ring: a run that must skip to the start then needs only room the destination will free.
        if (length == 0 || length > dataSize / 2 || length % PageSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(data), $"a run of {length} bytes is not whole pages within half a {dataSize}-byte ring");
        }

        ulong position = produced;
        if ((position % dataSize) + length > dataSize)
        {
            position += dataSize - (position % dataSize);
        }

        // The room this run needs: everything that was in its place one ring ago must have been released.
        ulong needed = position + length > dataSize ? position + length - dataSize : 0;
        if (Volatile.Read(ref Released) < needed)
        {
            beforeWait();
            WaitForRelease(needed, broken);
        }

        var copy = new Span<byte>(Data + (position % dataSize), data.Length);
        data.CopyTo(copy);
        produced = position + length;
        return (position, Crc32C.Compute(copy));
    }

    private void WaitForRelease(ulong needed, Func<string?> broken)
    {
        // Sleep for a quarter of the ring more than needed: one wake-up per quarter, not per run.
        // Everything up to `produced` is on its way (beforeWait), so the destination gets there.
        ulong target = Math.Min(needed + (dataSize / 4), produced);
        try
        {
            while (true)
            {
                int sequence = Volatile.Read(ref *Sequence);
                Volatile.Write(ref WakeAt, target);
                Interlocked.MemoryBarrier();
                if (Volatile.Read(ref Released) >= needed)
                {
                    return;
                }

                Futex.Wait(Sequence, sequence, WaitSlice);
                if (Volatile.Read(ref Released) >= needed)
                {
                    return;
                }

                if (broken() is { } reason)
                {
                    throw new IOException($"the destination stopped taking pages from the shared ring: {reason}");
                }
            }
        }
        finally
        {
            Volatile.Write(ref WakeAt, 0);
        }
    }

    /// <summary>
    /// Destination: the run a Page record points at, after checking the position against the ring's order and the
    /// data against the record's CRC. Place it, then <see cref="Release"/> it. The CRC catches a source that wrote the
    /// ring at the wrong time (a bug), not a hostile one, which owns the guest's memory anyway.
    /// </summary>
    public ReadOnlySpan<byte> Read(ulong position, ulong length, uint crc)
    {
        // Runs follow one another, whole 4 KiB pages, at most half a ring; one that would straddle the end starts over
        // at the start. So the next position is known exactly.
        ulong expected = consumed;
        if (length != 0 && length <= dataSize / 2 && (expected % dataSize) + length > dataSize)
        {
            expected += dataSize - (expected % dataSize);
        }

        if (length == 0 || length > dataSize / 2 || length % PageSize != 0 || position != expected)
        {
            throw new MigrationStreamException(
                $"corrupt migration stream: a shared-ring run at {position} (+{length}) does not follow the last one (ending at {consumed}) in a {dataSize}-byte ring");
        }

        var run = new ReadOnlySpan<byte>(Data + (position % dataSize), (int)length);
        uint actual = Crc32C.Compute(run);
        if (actual != crc)
        {
            throw new MigrationStreamException($"corrupt migration stream: a shared-ring run at {position} (+{length}) has CRC 0x{actual:x8}, its record says 0x{crc:x8}");
        }

        return run;
    }

    /// <summary>Destination: everything up to <paramref name="end"/> has been placed and may be overwritten.</summary>
    public void Release(ulong end)
    {
        consumed = end;
        Volatile.Write(ref Released, end);
        Interlocked.Increment(ref *Sequence);
        ulong wakeAt = Volatile.Read(ref WakeAt);
        if (wakeAt != 0 && end >= wakeAt)
        {
            Futex.Wake(Sequence, 1);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 0)
        {
            Mman.Unmap((nint)mapping, HeaderSize + dataSize);
            file.Dispose();
        }
    }
}
