using Vmm.Migration.Stream;

namespace Vmm.Migration;

/// <summary>
/// The Page record: block index (u16, position in the Setup layout), byte offset in the block (u64), length (u32),
/// flags (u8: 1 = zero page, no data follows), then the data.
/// </summary>
public static class PageRecord
{
    public const byte FlagZero = 1;

    /// <summary>Writes one page; returns true when it went as a zero page (flag only).</summary>
    public static bool Write(RecordWriter writer, int blockIndex, ulong offset, ReadOnlySpan<byte> page)
    {
        var payload = writer.Begin(RecordType.Page);
        payload.U16((ushort)blockIndex);
        payload.U64(offset);
        payload.U32((uint)page.Length);
        bool zero = !page.ContainsAnyExcept((byte)0);
        payload.U8(zero ? FlagZero : (byte)0);
        if (!zero)
        {
            payload.Bytes(page);
        }

        payload.Commit();
        return zero;
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
