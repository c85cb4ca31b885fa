using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace Vmm.Migration.Stream;

/// <summary>
/// Frames records onto a stream: type (1 byte), payload length (4, little-endian), payload, CRC-32C of all three
/// (4). Not thread-safe: one thread writes a direction of a connection.
/// </summary>
/// <remarks>
/// The writer buffers itself (up to <see cref="BufferSize"/>) and checksums the bytes once they are in its buffer,
/// never the caller's memory: a live precopy reads guest memory the guest keeps writing, and the checksum must
/// describe exactly the bytes that go out. That copy is the only one between guest memory and the socket — except
/// for <see cref="WriteStable"/>: memory nothing writes any more (guest RAM with every vCPU stopped) is checksummed
/// where it lies and handed to <paramref name="direct"/> from there, with no copy at all.
/// </remarks>
/// <param name="maxPayload">
/// The largest payload built with <see cref="Begin"/>, and a bound on the buffer: a writer for a few small records
/// (the preempt channel's introduction) need not allocate megabytes.
/// </param>
/// <param name="direct">
/// The stream beneath <paramref name="stream"/> (whose buffer <see cref="Flush"/> empties into it), for
/// <see cref="WriteStable"/>; null: stable data is copied like any other.
/// </param>
public sealed class RecordWriter(System.IO.Stream stream, int maxPayload = RecordReader.MaxPayload, System.IO.Stream? direct = null)
{
    private const int BufferSize = 1 << 20;

    /// <summary>
    /// Stable data shorter than this is copied all the same: the two writes a direct record costs (what is buffered,
    /// then the data) are worth it only when they save a large copy.
    /// </summary>
    public const int DirectMinimum = 32 * 1024;

    private readonly byte[] scratch = new byte[maxPayload + 16];
    private readonly byte[] buffer = new byte[Math.Min(BufferSize, maxPayload + 16)];
    private int used;

    private uint digestState = uint.MaxValue;

    /// <summary>Bytes of records written so far (buffered or sent).</summary>
    public long BytesWritten { get; private set; }

    /// <summary>Records written so far (<see cref="StreamSeal"/>).</summary>
    public long Records { get; private set; }

    /// <summary>The running CRC-32C of the CRCs of every record written so far, in order (<see cref="StreamSeal"/>).</summary>
    public uint Digest => ~digestState;

    /// <summary>Starts a record; fill the returned payload builder and call <see cref="PayloadBuilder.Commit"/>.</summary>
    public PayloadBuilder Begin(RecordType type) => new(this, type);

    public void Write(RecordType type, ReadOnlySpan<byte> payload) => Write(type, payload, default);

    /// <summary>
    /// Writes one record whose payload is <paramref name="payload"/> followed by <paramref name="data"/>: page data
    /// goes from guest memory into the buffer without a stop in the scratch buffer.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public void Write(RecordType type, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> data)
    {
        Span<byte> head = stackalloc byte[5];
        head[0] = (byte)type;
        BinaryPrimitives.WriteUInt32LittleEndian(head[1..], (uint)(payload.Length + data.Length));
        uint crc = Append(head, uint.MaxValue);
        crc = Append(payload, crc);
        crc = Append(data, crc);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(tail, ~crc);
        Append(tail, 0); // the checksum itself is not checksummed: the value returned is dropped
        BytesWritten += 9 + payload.Length + data.Length;
        digestState = Crc32C.Append(digestState, tail);
        Records++;
    }

    /// <summary>
    /// As <see cref="Write(RecordType, ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>, for <paramref name="data"/> that
    /// nothing changes until this returns (guest RAM with every vCPU stopped): the bytes go from there to the socket
    /// and the checksum is computed over the memory itself, so it still describes exactly what went out.
    /// Memory the guest may still write must never come here: a write between the checksum and the send would reach the
    /// destination as a corrupt record.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public void WriteStable(RecordType type, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> data)
    {
        if (direct is null || data.Length < DirectMinimum)
        {
            Write(type, payload, data);
            return;
        }

        Span<byte> head = stackalloc byte[5];
        head[0] = (byte)type;
        BinaryPrimitives.WriteUInt32LittleEndian(head[1..], (uint)(payload.Length + data.Length));
        uint crc = Append(head, uint.MaxValue);
        crc = Append(payload, crc);

        // The header goes first (with whatever was buffered before it), then the data from where it lies. Its checksum
        // is computed after the send, which has just brought the data into the cache (guest memory holds still, so the
        // bytes are the same): checksumming first would read it cold from memory while the destination waits. The
        // checksum then waits in the buffer for the next flush.
        Flush();
        direct.Write(data);
        crc = Crc32C.Append(crc, data);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(tail, ~crc);
        Append(tail, 0);
        BytesWritten += 9 + payload.Length + data.Length;
        digestState = Crc32C.Append(digestState, tail);
        Records++;
    }

    /// <summary>Sends everything buffered.</summary>
    public void Flush()
    {
        Drain();
        stream.Flush();
    }

    /// <summary>Copies <paramref name="source"/> into the buffer and checksums the copy.</summary>
    private uint Append(ReadOnlySpan<byte> source, uint crc)
    {
        while (!source.IsEmpty)
        {
            if (used == buffer.Length)
            {
                Drain();
            }

            int count = Math.Min(source.Length, buffer.Length - used);
            Span<byte> copy = buffer.AsSpan(used, count);
            source[..count].CopyTo(copy);
            crc = Crc32C.Append(crc, copy);
            used += count;
            source = source[count..];
        }

        return crc;
    }

    private void Drain()
    {
        if (used > 0)
        {
            stream.Write(buffer, 0, used);
            used = 0;
        }
    }

    /// <summary>Builds a payload in the writer's scratch buffer, so steady-state writes allocate nothing.</summary>
    public ref struct PayloadBuilder
    {
        private readonly RecordWriter writer;
        private readonly RecordType type;
        private int length;

        internal PayloadBuilder(RecordWriter writer, RecordType type)
        {
            this.writer = writer;
            this.type = type;
            length = 0;
        }

        private readonly Span<byte> Free => writer.scratch.AsSpan(length);

        public void U8(byte value) => writer.scratch[length++] = value;

        public void U16(ushort value)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(Free, value);
            length += 2;
        }

        public void U32(uint value)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(Free, value);
            length += 4;
        }

        public void U64(ulong value)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(Free, value);
            length += 8;
        }

        public void Bytes(ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(Free);
            length += bytes.Length;
        }

        /// <summary>A length-prefixed (u16) UTF-8 string.</summary>
        public void String(string value)
        {
            int count = Encoding.UTF8.GetBytes(value, Free[2..]);
            U16((ushort)count);
            length += count;
        }

        /// <summary>A length-prefixed (u32) byte blob.</summary>
        public void Blob(ReadOnlySpan<byte> bytes)
        {
            U32((uint)bytes.Length);
            Bytes(bytes);
        }

        public readonly void Commit() => writer.Write(type, writer.scratch.AsSpan(0, length));
    }
}
