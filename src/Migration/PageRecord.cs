using System.Buffers.Binary;
using Vmm.Migration.Stream;

namespace Vmm.Migration;

/// <summary>
/// The Page record: block index (u16, position in the Setup layout), byte offset in the block (u64), length (u32),
/// flags (u8: 1 = zero page, no data follows), then the data.
/// </summary>
public static class PageRecord
{
    public const byte FlagZero = 1;

    /// <summary>Block index, offset, length and flags: the bytes before the data.</summary>
    private const int HeadLength = 2 + 8 + 4 + 1;

    /// <summary>Writes one page, as a zero page (flag only) when it is all zeros; returns true in that case.</summary>
    public static bool Write(RecordWriter writer, int blockIndex, ulong offset, ReadOnlySpan<byte> page)
    {
        if (page.ContainsAnyExcept((byte)0))
        {
            WriteData(writer, blockIndex, offset, page);
            return false;
        }

        WriteZeros(writer, blockIndex, offset, (ulong)page.Length);
        return true;
    }

    /// <summary>Writes a page the caller already knows is not all zeros.</summary>
    public static void WriteData(RecordWriter writer, int blockIndex, ulong offset, ReadOnlySpan<byte> page)
    {
        Span<byte> head = stackalloc byte[HeadLength];
        BinaryPrimitives.WriteUInt16LittleEndian(head, (ushort)blockIndex);
        BinaryPrimitives.WriteUInt64LittleEndian(head[2..], offset);
        BinaryPrimitives.WriteUInt32LittleEndian(head[10..], (uint)page.Length);
        head[14] = 0;
        writer.Write(RecordType.Page, head, page);
    }

    /// <summary>Writes <paramref name="length"/> bytes of zero pages (one page or a run) as one record with the zero flag.</summary>
    public static void WriteZeros(RecordWriter writer, int blockIndex, ulong offset, ulong length)
    {
        var payload = writer.Begin(RecordType.Page);
        payload.U16((ushort)blockIndex);
        payload.U64(offset);
        payload.U32((uint)length);
        payload.U8(FlagZero);
        payload.Commit();
    }

    public readonly ref struct Parsed(int blockIndex, ulong offset, uint length, bool zero, ReadOnlySpan<byte> data)
    {
        public int BlockIndex { get; } = blockIndex;

        public ulong Offset { get; } = offset;

        public uint Length { get; } = length;

        public bool Zero { get; } = zero;

        public ReadOnlySpan<byte> Data { get; } = data;
    }

    public static Parsed Read(Record record)
    {
        PayloadReader reader = record.Reader();
        int block = reader.U16();
        ulong offset = reader.U64();
        uint length = reader.U32();
        byte flags = reader.U8();
        if ((flags & ~FlagZero) != 0)
        {
            throw new MigrationStreamException($"corrupt migration stream: unknown page flags 0x{flags:x2}");
        }

        bool zero = (flags & FlagZero) != 0;
        ReadOnlySpan<byte> data = zero ? default : reader.Bytes((int)length);
        reader.End();
        return new Parsed(block, offset, length, zero, data);
    }
}
