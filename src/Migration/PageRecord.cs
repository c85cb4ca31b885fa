using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Vmm.Migration.Stream;

namespace Vmm.Migration;

/// <summary>
/// The Page record: block index (u16, position in the Setup layout), byte offset in the block (u64), length (u32),
/// flags (u8: 1 = zero page, no data follows; 2 = the data is in the postcopy push's shared ring, and what follows is
/// its position there, u64, and the CRC-32C of the data, u32 — see <see cref="Postcopy.SharedPageRing"/>; 4 = the data is
/// the deltas of consecutive 4 KiB pages against the bytes last sent for each, <see cref="WriteDeltas"/>; 8 = the data is
/// the zero-run encodings of consecutive 4 KiB pages, <see cref="WriteSparse"/>), then the data.
/// </summary>
public static class PageRecord
{
    public const byte FlagZero = 1;

    public const byte FlagShared = 2;

    /// <summary>The data is the deltas (<see cref="XbzrleEncoding"/>) of the pages the record covers: precopy only.</summary>
    public const byte FlagDelta = 4;

    /// <summary>
    /// The data is the zero-run encodings (<see cref="SparsePageEncoding"/>) of the pages the record covers, at most
    /// <see cref="SparsePageEncoding.MaxRecordPages"/>: wherever a data page may go except the shared ring.
    /// </summary>
    public const byte FlagSparse = 8;

    /// <summary>The bytes before each page's delta in a delta record: its length, u16.</summary>
    public const int DeltaLengthBytes = 2;

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

    /// <summary>
    /// Writes the deltas of <paramref name="pages"/> consecutive 4 KiB pages from <paramref name="offset"/> against the
    /// bytes last sent for each: <paramref name="deltas"/> holds, page after page, a u16 length and that many bytes of
    /// delta (<see cref="XbzrleEncoding.Encode"/>; a length of 0: the page is unchanged).
    /// </summary>
    public static void WriteDeltas(RecordWriter writer, int blockIndex, ulong offset, int pages, ReadOnlySpan<byte> deltas) =>
        WriteEncodedPages(writer, blockIndex, offset, pages, FlagDelta, deltas);

    /// <summary>
    /// Writes the sparse encodings of <paramref name="pages"/> consecutive 4 KiB pages from <paramref name="offset"/>:
    /// <paramref name="encodings"/> holds, page after page, a u16 length and that many bytes
    /// (<see cref="SparsePageEncoding.Encode"/>; a length of 0: the page is all zeros).
    /// </summary>
    public static void WriteSparse(RecordWriter writer, int blockIndex, ulong offset, int pages, ReadOnlySpan<byte> encodings) =>
        WriteEncodedPages(writer, blockIndex, offset, pages, FlagSparse, encodings);

    /// <summary>A record of <paramref name="pages"/> 4 KiB pages whose data is one encoding per page (deltas, sparse pages).</summary>
    private static void WriteEncodedPages(RecordWriter writer, int blockIndex, ulong offset, int pages, byte flag, ReadOnlySpan<byte> encodings)
    {
        Span<byte> head = stackalloc byte[HeadLength];
        BinaryPrimitives.WriteUInt16LittleEndian(head, (ushort)blockIndex);
        BinaryPrimitives.WriteUInt64LittleEndian(head[2..], offset);
        BinaryPrimitives.WriteUInt32LittleEndian(head[10..], (uint)(pages * XbzrleEncoding.PageSize));
        head[14] = flag;
        writer.Write(RecordType.Page, head, encodings);
    }

    /// <summary>The sparse record of one page, encoded here (tests, seeds).</summary>
    public static void WriteSparsePage(RecordWriter writer, int blockIndex, ulong offset, ReadOnlySpan<byte> page)
    {
        byte[] entry = new byte[SparsePageEncoding.LengthBytes + SparsePageEncoding.PageSize];
        int length = SparsePageEncoding.Encode(page, entry.AsSpan(SparsePageEncoding.LengthBytes), SparsePageEncoding.PageSize);
        if (length < 0)
        {
            throw new ArgumentException("the page does not encode in a page's bytes", nameof(page));
        }

        BinaryPrimitives.WriteUInt16LittleEndian(entry, (ushort)length);
        WriteSparse(writer, blockIndex, offset, 1, entry.AsSpan(0, SparsePageEncoding.LengthBytes + length));
    }

    /// <summary>The delta record of one page (tests, seeds).</summary>
    public static void WriteDelta(RecordWriter writer, int blockIndex, ulong offset, ReadOnlySpan<byte> delta)
    {
        byte[] entry = new byte[DeltaLengthBytes + delta.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(entry, (ushort)delta.Length);
        delta.CopyTo(entry.AsSpan(DeltaLengthBytes));
        WriteDeltas(writer, blockIndex, offset, 1, entry);
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

    public readonly ref struct Parsed(int blockIndex, ulong offset, uint length, bool zero, ReadOnlySpan<byte> data, (ulong Position, uint Crc)? shared = null, bool placed = false, bool delta = false, bool sparse = false)
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

        /// <summary>Delta pages: <see cref="Data"/> holds each page's u16 length and delta, for the pages of [<see cref="Offset"/>, +<see cref="Length"/>).</summary>
        public bool Delta { get; } = delta;

        /// <summary>
        /// Sparse pages: <see cref="Data"/> holds each page's u16 length and zero-run encoding, for the pages of
        /// [<see cref="Offset"/>, +<see cref="Length"/>) (<see cref="Expanded"/> turns it into plain data).
        /// </summary>
        public bool Sparse { get; } = sparse;

        /// <summary>
        /// This record as plain data: a sparse one expanded into <paramref name="buffer"/> (at least
        /// <see cref="SparsePageEncoding.MaxRecordPages"/> pages), any other as it is.
        /// </summary>
        public Parsed Expanded(Span<byte> buffer) => Sparse
            ? new Parsed(BlockIndex, Offset, Length, zero: false, SparsePageEncoding.Expand(Data, Length / SparsePageEncoding.PageSize, buffer))
            : this;

        /// <summary>
        /// This record as plain data: a sparse one expanded into <paramref name="buffer"/> (valid until the buffer's
        /// next expansion; <see cref="SparseExpansionBuffer.Reset"/> once it is placed), any other as it is.
        /// </summary>
        public Parsed Expanded(SparseExpansionBuffer buffer) => Sparse
            ? new Parsed(BlockIndex, Offset, Length, zero: false, buffer.Expand(Data, Length / SparsePageEncoding.PageSize))
            : this;
    }

    /// <summary>
    /// The head of a data record, as a <see cref="PageTarget"/> sees it: block index, offset and data length, or null
    /// for any other kind of record (zero, shared, unknown flags), which goes the usual way.
    /// </summary>
    public static (int BlockIndex, ulong Offset, uint Length)? DataHead(ReadOnlySpan<byte> head) =>
        head.Length == HeadLength && head[14] == 0
            ? (BinaryPrimitives.ReadUInt16LittleEndian(head), BinaryPrimitives.ReadUInt64LittleEndian(head[2..]), BinaryPrimitives.ReadUInt32LittleEndian(head[10..]))
            : null;

    /// <param name="allowDelta">
    /// Whether a delta page may come here: only in precopy (before any discard), where the page it changes holds what
    /// the source last sent. Anywhere else (postcopy placement, the preempt channel, a recovery) it is a protocol error.
    /// </param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public static Parsed Read(Record record, bool allowDelta = false)
    {
        PayloadReader reader = record.Reader();
        int block = reader.U16();
        ulong offset = reader.U64();
        uint length = reader.U32();
        byte flags = reader.U8();
        if ((flags & ~(FlagZero | FlagShared | FlagDelta | FlagSparse)) != 0 || (flags != 0 && !System.Numerics.BitOperations.IsPow2(flags)))
        {
            throw new MigrationStreamException($"corrupt migration stream: unknown page flags 0x{flags:x2}");
        }

        if (flags == FlagDelta)
        {
            if (!allowDelta)
            {
                throw new MigrationStreamException("protocol error: an XBZRLE delta Page record outside precopy (deltas are refused from the first PostcopyDiscard on, and on the preempt channel)");
            }

            if (length == 0 || length % XbzrleEncoding.PageSize != 0)
            {
                throw new MigrationStreamException($"corrupt migration stream: an XBZRLE delta Page record of length {length} (deltas are of whole 4096-byte pages)");
            }

            ReadOnlySpan<byte> delta = reader.Bytes(reader.Remaining);
            return new Parsed(block, offset, length, zero: false, delta, delta: true);
        }

        if (flags == FlagSparse)
        {
            if (length == 0 || length % SparsePageEncoding.PageSize != 0 || length / SparsePageEncoding.PageSize > SparsePageEncoding.MaxRecordPages)
            {
                throw new MigrationStreamException($"corrupt migration stream: a sparse Page record of length {length} (sparse records are of 1 to {SparsePageEncoding.MaxRecordPages} whole 4096-byte pages)");
            }

            ReadOnlySpan<byte> encodings = reader.Bytes(reader.Remaining);
            return new Parsed(block, offset, length, zero: false, encodings, sparse: true);
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
