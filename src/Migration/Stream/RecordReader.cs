using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace Vmm.Migration.Stream;

/// <summary>
/// Reads records framed by <see cref="RecordWriter"/> and checks each CRC. A bad CRC, an impossible length, an
/// unknown type or a connection that ends mid-record is a <see cref="MigrationStreamException"/>: never guest memory.
/// </summary>
/// <param name="maxPayload">The largest payload accepted (and the buffer allocated): <see cref="MaxPayload"/> for a
/// migration stream, less for a reader of a few known small records.</param>
public sealed class RecordReader(System.IO.Stream stream, int maxPayload = RecordReader.MaxPayload)
{
    /// <summary>The largest payload: a 2 MiB huge page plus its header, with room to spare.</summary>
    public const int MaxPayload = (2 << 20) + 4096;

    private readonly byte[] buffer = new byte[maxPayload];
    private uint digestState = uint.MaxValue;

    public long BytesRead { get; private set; }

    /// <summary>Records read so far (<see cref="StreamSeal"/>).</summary>
    public long Records { get; private set; }

    /// <summary>The running CRC-32C of the CRCs of every record read so far, in order (<see cref="StreamSeal"/>).</summary>
    public uint Digest => ~digestState;

    /// <summary><see cref="Records"/> before the last record read: what a seal in that record must say.</summary>
    public long RecordsBeforeLast { get; private set; }

    /// <summary><see cref="Digest"/> before the last record read.</summary>
    public uint DigestBeforeLast { get; private set; }

    /// <summary>
    /// Where the data of a Page record may be read to directly instead of into this reader's buffer: given the
    /// record's head (block index, offset, length, flags: <see cref="PageRecord.HeadLength"/> bytes, not yet
    /// checksummed), the exact span of guest memory the data belongs in, or an empty span for the usual way. Only for
    /// memory no vCPU runs on (precopy on the destination): a record whose checksum then fails has already written
    /// there, and the migration fails with the guest never started. Null: every payload goes into the buffer.
    /// </summary>
    public PageTarget? DirectPages { get; set; }

    /// <summary>Reads the next record; the payload is valid until the next call.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public Record Read()
    {
        Span<byte> head = stackalloc byte[5];
        ReadExactly(head, type: null, allowCleanEnd: true);
        var type = (RecordType)head[0];
        if (!Enum.IsDefined(type))
        {
            throw new MigrationStreamException($"corrupt migration stream: unknown record type 0x{head[0]:x2} at byte {BytesRead}");
        }

        uint length = BinaryPrimitives.ReadUInt32LittleEndian(head[1..]);
        int limit = Math.Min(maxPayload, RecordLimits.MaxPayload(type));
        if (length > limit)
        {
            throw new MigrationStreamException($"corrupt migration stream: {type} record of {length} bytes at byte {BytesRead} exceeds the limit of {limit}");
        }

        Span<byte> payload = buffer.AsSpan(0, (int)length);
        Span<byte> placed = default;
        if (type == RecordType.Page && DirectPages is { } target && length > PageRecord.HeadLength)
        {
            // The head first; the data straight into guest memory if the head points at a place for exactly it.
            Span<byte> pageHead = payload[..PageRecord.HeadLength];
            ReadExactly(pageHead, type);
            Span<byte> into = target(pageHead);
            if (into.Length == length - PageRecord.HeadLength)
            {
                placed = into;
                payload = pageHead;
            }
            else
            {
                ReadExactly(payload[PageRecord.HeadLength..], type);
            }
        }
        else
        {
            ReadExactly(payload, type);
        }

        if (!placed.IsEmpty)
        {
            ReadExactly(placed, type);
        }

        Span<byte> tail = stackalloc byte[4];
        ReadExactly(tail, type, checksum: true);
        uint expected = BinaryPrimitives.ReadUInt32LittleEndian(tail);
        uint actual = ~Crc32C.Append(Crc32C.Append(Crc32C.Append(uint.MaxValue, head), payload), placed);
        if (actual != expected)
        {
            throw new MigrationStreamException($"corrupt migration stream: CRC-32C mismatch in a {type} record at byte {BytesRead - length - 9}");
        }

        RecordsBeforeLast = Records;
        DigestBeforeLast = Digest;
        digestState = Crc32C.Append(digestState, tail);
        Records++;

        return new Record(type, buffer, payload.Length, placed: !placed.IsEmpty);
    }

    /// <summary>
    /// Fills <paramref name="destination"/> from the stream: part of a <paramref name="type"/> record (its checksum
    /// with <paramref name="checksum"/>), or with a null type a record header. The part is named only in an error:
    /// formatting it for every read cost two strings per record.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private void ReadExactly(Span<byte> destination, RecordType? type, bool checksum = false, bool allowCleanEnd = false)
    {
        int done = 0;
        while (done < destination.Length)
        {
            int read;
            try
            {
                read = stream.Read(destination[done..]);
            }
            catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.TimedOut or System.Net.Sockets.SocketError.WouldBlock })
            {
                // SO_RCVTIMEO expired: the peer went quiet (MigrationTimeouts.Read).
                throw new MigrationStreamException($"migration connection timed out: nothing arrived for too long while reading {Describe(type, checksum)}", e);
            }
            catch (IOException e)
            {
                throw new MigrationStreamException($"migration connection failed while reading {Describe(type, checksum)}: {e.InnerException?.Message ?? e.Message}", e);
            }

            if (read == 0)
            {
                throw new MigrationStreamException(done == 0 && allowCleanEnd
                    ? "truncated migration stream: the connection closed before the end of the migration"
                    : $"truncated migration stream: the connection closed in the middle of {Describe(type, checksum)}");
            }

            done += read;
            BytesRead += read;
        }
    }

    private static string Describe(RecordType? type, bool checksum) => type switch
    {
        null => "a record header",
        { } known when checksum => $"the checksum of a {known} record",
        { } known => $"a {known} record",
    };
}

/// <summary>
/// Given a Page record's head, the guest memory its data may be read into directly, or empty
/// (<see cref="RecordReader.DirectPages"/>).
/// </summary>
public delegate Span<byte> PageTarget(ReadOnlySpan<byte> head);

/// <summary>One record; <see cref="Payload"/> borrows the reader's buffer.</summary>
/// <param name="placed">A Page record whose data the reader put straight into guest memory: the payload is only its head.</param>
public readonly ref struct Record(RecordType type, byte[] buffer, int length, bool placed = false)
{
    public RecordType Type { get; } = type;

    /// <summary>A Page record whose data is already where it belongs, checksum verified (<see cref="RecordReader.DirectPages"/>).</summary>
    public bool Placed { get; } = placed;

    public ReadOnlySpan<byte> Payload => buffer.AsSpan(0, length);

    public PayloadReader Reader() => new(Payload, Type);
}

/// <summary>Reads the fields of one payload; running off its end is a corrupt-stream error.</summary>
public ref struct PayloadReader(ReadOnlySpan<byte> payload, RecordType type)
{
    private ReadOnlySpan<byte> rest = payload;

    public readonly int Remaining => rest.Length;

    public byte U8() => Take(1)[0];

    public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));

    public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    public ReadOnlySpan<byte> Bytes(int count) => Take(count);

    public string String()
    {
        int count = U16();
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Take(count));
        }
        catch (DecoderFallbackException e)
        {
            throw new MigrationStreamException($"corrupt migration stream: invalid UTF-8 in a {type} record", e);
        }
    }

    /// <summary>A u32 byte count and the bytes; a count past the payload is corruption (never an overflow).</summary>
    /// <summary>A string that names something (a RAM block, a state section): at most <see cref="RecordLimits.MaxNameBytes"/> bytes.</summary>
    public string Name()
    {
        int count = BinaryPrimitives.ReadUInt16LittleEndian(rest.Length >= 2 ? rest : throw new MigrationStreamException($"corrupt migration stream: a {type} record is shorter than its fields"));
        return count > RecordLimits.MaxNameBytes
            ? throw new MigrationStreamException($"corrupt migration stream: a name of {count} bytes in a {type} record (at most {RecordLimits.MaxNameBytes})")
            : String();
    }

    public ReadOnlySpan<byte> Blob()
    {
        uint count = U32();
        return count > (uint)rest.Length
            ? throw new MigrationStreamException($"corrupt migration stream: a {type} record is shorter than its fields")
            : Take((int)count);
    }

    /// <summary>Every byte of the payload must have been consumed: trailing garbage is corruption too.</summary>
    public readonly void End()
    {
        if (rest.Length != 0)
        {
            throw new MigrationStreamException($"corrupt migration stream: {rest.Length} unexpected trailing bytes in a {type} record");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    private ReadOnlySpan<byte> Take(int count)
    {
        if (count < 0 || count > rest.Length)
        {
            throw new MigrationStreamException($"corrupt migration stream: a {type} record is shorter than its fields");
        }

        ReadOnlySpan<byte> taken = rest[..count];
        rest = rest[count..];
        return taken;
    }
}
