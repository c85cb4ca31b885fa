using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Migration.Postcopy;

/// <summary>
/// PostcopyReceivedBitmap (postcopy recovery, destination → source): <c>u16</c> block index, <c>u64</c> first host
/// page, <c>u32</c> host page count N, then ⌈N/8⌉ bytes, bit i (least significant first) set when host page first + i
/// is here. A block's bitmap goes in stretches of at most <see cref="MaxPagesPerRecord"/> pages, in order, so a block of
/// any size fits the record limit; PostcopyResumeReady (<c>u16</c> block count) ends them.
/// </summary>
public static class ReceivedBitmapRecord
{
    /// <summary>Block index, first page, page count.</summary>
    public const int HeaderBytes = 2 + 8 + 4;

    /// <summary>64 KiB of bits a record: 2 GiB of 4 KiB pages.</summary>
    public const int MaxBitmapBytes = 64 * 1024;

    public const uint MaxPagesPerRecord = MaxBitmapBytes * 8;

    /// <summary>Writes the received bitmap of block <paramref name="blockIndex"/> for its first <paramref name="hostPages"/> host pages.</summary>
    public static void Write(RecordWriter writer, int blockIndex, DirtyBitmap received, ulong hostPages)
    {
        byte[] bits = new byte[MaxBitmapBytes];
        for (ulong first = 0; first < hostPages; first += MaxPagesPerRecord)
        {
            uint count = (uint)Math.Min(MaxPagesPerRecord, hostPages - first);
            int bytes = (int)((count + 7) / 8);
            Array.Clear(bits, 0, bytes);
            for (uint i = 0; i < count; i++)
            {
                if (received.IsSet(first + i))
                {
                    bits[i / 8] |= (byte)(1 << (int)(i % 8));
                }
            }

            var payload = writer.Begin(RecordType.PostcopyReceivedBitmap);
            payload.U16((ushort)blockIndex);
            payload.U64(first);
            payload.U32(count);
            payload.Bytes(bits.AsSpan(0, bytes));
            payload.Commit();
        }
    }

    /// <summary>
    /// Parses one stretch. Only its shape is checked here (the count against the bytes that carry it, no bit past the
    /// count); whether it fits the layout is the receiver's check (<see cref="ReceivedBitmapAssembler"/>).
    /// </summary>
    public static (int BlockIndex, ulong FirstPage, uint PageCount, byte[] Bits) Read(PayloadReader payload)
    {
        int block = payload.U16();
        ulong first = payload.U64();
        uint count = payload.U32();
        if (count == 0 || count > MaxPagesPerRecord)
        {
            throw new MigrationStreamException($"corrupt migration stream: a PostcopyReceivedBitmap record of {count} pages");
        }

        byte[] bits = payload.Bytes((int)((count + 7) / 8)).ToArray();
        payload.End();
        if (count % 8 != 0 && (bits[^1] >> (int)(count % 8)) != 0)
        {
            throw new MigrationStreamException("corrupt migration stream: a PostcopyReceivedBitmap record has bits past its page count");
        }

        return (block, first, count, bits);
    }
}
