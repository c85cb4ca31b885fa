using System.Buffers.Binary;
using System.Text;

namespace Vmm.Migration.Stream;

/// <summary>
/// Frames records onto a stream: type (1 byte), payload length (4, little-endian), payload, CRC-32C of all three
/// (4). Not thread-safe: one thread writes a direction of a connection.
/// </summary>
public sealed class RecordWriter(System.IO.Stream stream)
{
    private readonly byte[] scratch = new byte[RecordReader.MaxPayload + 16];

    public long BytesWritten { get; private set; }

    /// <summary>Starts a record; fill the returned payload builder and call <see cref="PayloadBuilder.Commit"/>.</summary>
    public PayloadBuilder Begin(RecordType type) => new(this, type);

    public void Write(RecordType type, ReadOnlySpan<byte> payload)
    {
        Span<byte> head = stackalloc byte[5];
        head[0] = (byte)type;
        BinaryPrimitives.WriteUInt32LittleEndian(head[1..], (uint)payload.Length);
        uint crc = ~Crc32C.Append(Crc32C.Append(uint.MaxValue, head), payload);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(tail, crc);
        stream.Write(head);
        stream.Write(payload);
        stream.Write(tail);
        BytesWritten += 9 + payload.Length;
    }

    public void Flush() => stream.Flush();

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
