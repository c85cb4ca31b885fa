using System.Buffers.Binary;
using Vmm.Migration.Stream;

namespace Vmm.Migration;

/// <summary>
/// The Page record: block index (u16, position in the Setup layout), byte offset in the block (u64), length (u32),
/// flags (u8: 1 = zero page, no data follows; 2 = the data is in the postcopy push's shared ring, and what follows is
/// its position there, u64, and the CRC-32C of the data, u32 — see <see cref="Postcopy.SharedPageRing"/>), then the data.
/// </summary>
public static class PageRecord
{
    public const byte FlagZero = 1;

    public const byte FlagShared = 2;

    /// <summary>Block index, offset, length and flags: the bytes before the data.</summary>
    internal const int HeadLength = 2 + 8 + 4 + 1;

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

    /// <summary>
    /// Writes a page the caller already knows is not all zeros; <paramref name="stable"/>: nothing writes it until this
    /// returns (<see cref="RecordWriter.WriteStable"/>).
    /// </summary>
    public static void WriteData(RecordWriter writer, int blockIndex, ulong offset, ReadOnlySpan<byte> page, bool stable = false)
    {
        Span<byte> head = stackalloc byte[HeadLength];
        BinaryPrimitives.WriteUInt16LittleEndian(head, (ushort)blockIndex);
        BinaryPrimitives.WriteUInt64LittleEndian(head[2..], offset);
        BinaryPrimitives.WriteUInt32LittleEndian(head[10..], (uint)page.Length);
        head[14] = 0;
        if (stable)
        {
            writer.WriteStable(RecordType.Page, head, page);
        }
        else
        {
            writer.Write(RecordType.Page, head, page);
        }
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

    /// <summary>Writes a run whose data the caller has put in the shared ring at <paramref name="position"/>.</summary>
    public static void WriteShared(RecordWriter writer, int blockIndex, ulong offset, ulong length, ulong position, uint crc)
    {
        var payload = writer.Begin(RecordType.Page);
        payload.U16((ushort)blockIndex);
        payload.U64(offset);
        payload.U32((uint)length);
        payload.U8(FlagShared);
        payload.U64(position);
        payload.U32(crc);
        payload.Commit();
    }

    public readonly ref struct Parsed(int blockIndex, ulong offset, uint length, bool zero, ReadOnlySpan<byte> data, (ulong Position, uint Crc)? shared = null, bool placed = false)
    {
        public int BlockIndex { get; } = blockIndex;

        public ulong Offset { get; } = offset;

        public uint Length { get; } = length;

        public bool Zero { get; } = zero;

        public ReadOnlySpan<byte> Data { get; } = data;

        /// <summary>For a run in the shared ring: where, and the CRC of its data; <see cref="Data"/> is empty then.</summary>
        public (ulong Position, uint Crc)? Shared { get; } = shared;

        /// <summary>The data is already in guest memory (<see cref="Record.Placed"/>); <see cref="Data"/> is empty then.</summary>
        public bool Placed { get; } = placed;

    }

    /// <summary>
    /// The head of a data record, as a <see cref="PageTarget"/> sees it: block index, offset and data length, or null
    /// for any other kind of record (zero, shared, unknown flags), which goes the usual way.
    /// </summary>
    public static (int BlockIndex, ulong Offset, uint Length)? DataHead(ReadOnlySpan<byte> head) =>
        head.Length == HeadLength && head[14] == 0
            ? (BinaryPrimitives.ReadUInt16LittleEndian(head), BinaryPrimitives.ReadUInt64LittleEndian(head[2..]), BinaryPrimitives.ReadUInt32LittleEndian(head[10..]))
            : null;

    public static Parsed Read(Record record)
    {
        PayloadReader reader = record.Reader();
        int block = reader.U16();
        ulong offset = reader.U64();
        uint length = reader.U32();
        byte flags = reader.U8();
        if ((flags & ~(FlagZero | FlagShared)) != 0 || flags == (FlagZero | FlagShared))
        {
            throw new MigrationStreamException($"corrupt migration stream: unknown page flags 0x{flags:x2}");
        }

        if (flags == FlagShared)
        {
            ulong position = reader.U64();
            uint crc = reader.U32();
            reader.End();
            return new Parsed(block, offset, length, zero: false, default, (position, crc));
        }

        bool zero = (flags & FlagZero) != 0;
        if (record.Placed)
        {
            // The reader's target accepted only data records whose length matched what it read (PageTarget).
            reader.End();
            return new Parsed(block, offset, length, zero: false, default, placed: true);
        }

        ReadOnlySpan<byte> data = zero ? default : reader.Bytes((int)length);
        reader.End();
        return new Parsed(block, offset, length, zero, data);
    }
}
