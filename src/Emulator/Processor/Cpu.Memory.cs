using System.Runtime.CompilerServices;
using Vmm.Emulator.Memory;

namespace Vmm.Emulator.Processor;

/// <summary>
/// Memory as instructions see it: segment-relative reads and writes of 1, 2 and 4 bytes. The fast path is one limit
/// compare, one table load and the access itself (plus the page's dirty byte for a write); everything else — a
/// limit to check properly, a page not in the map, an access that straddles two pages, MMIO, a page holding code, ROM —
/// goes to the slow path, which handles it byte by byte where it must.
/// </summary>
public sealed unsafe partial class Cpu
{
    private const uint PageMask = GuestPhysicalMemory.PageMask;
    private const int PageShift = GuestPhysicalMemory.PageShift;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte Read8(int seg, uint offset)
    {
        if (offset > ReadLimit[seg])
        {
            CheckSegmentSlow(seg, offset, 1, write: false);
        }

        uint linear = SegBase[seg] + offset;
        nint host = readPages[linear >> PageShift];
        return host != 0 ? *(byte*)(host + (nint)(linear & PageMask)) : ReadLinearSlow8(linear);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort Read16(int seg, uint offset)
    {
        if ((long)offset + 1 > ReadLimit[seg])
        {
            CheckSegmentSlow(seg, offset, 2, write: false);
        }

        uint linear = SegBase[seg] + offset;
        nint host = readPages[linear >> PageShift];
        return host != 0 && (linear & PageMask) <= PageMask - 1 ? *(ushort*)(host + (nint)(linear & PageMask)) : (ushort)ReadLinearSlow(linear, 2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Read32(int seg, uint offset)
    {
        if ((long)offset + 3 > ReadLimit[seg])
        {
            CheckSegmentSlow(seg, offset, 4, write: false);
        }

        uint linear = SegBase[seg] + offset;
        nint host = readPages[linear >> PageShift];
        return host != 0 && (linear & PageMask) <= PageMask - 3 ? *(uint*)(host + (nint)(linear & PageMask)) : ReadLinearSlow(linear, 4);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write8(int seg, uint offset, byte value)
    {
        if (offset > WriteLimit[seg])
        {
            CheckSegmentSlow(seg, offset, 1, write: true);
        }

        uint linear = SegBase[seg] + offset;
        nint host = writePages[linear >> PageShift];
        if (host != 0)
        {
            *(byte*)(host + (nint)(linear & PageMask)) = value;
            MarkDirty(linear);
            return;
        }

        WriteLinearSlow(linear, value, 1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write16(int seg, uint offset, ushort value)
    {
        if ((long)offset + 1 > WriteLimit[seg])
        {
            CheckSegmentSlow(seg, offset, 2, write: true);
        }

        uint linear = SegBase[seg] + offset;
        nint host = writePages[linear >> PageShift];
        if (host != 0 && (linear & PageMask) <= PageMask - 1)
        {
            *(ushort*)(host + (nint)(linear & PageMask)) = value;
            MarkDirty(linear);
            return;
        }

        WriteLinearSlow(linear, value, 2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write32(int seg, uint offset, uint value)
    {
        if ((long)offset + 3 > WriteLimit[seg])
        {
            CheckSegmentSlow(seg, offset, 4, write: true);
        }

        uint linear = SegBase[seg] + offset;
        nint host = writePages[linear >> PageShift];
        if (host != 0 && (linear & PageMask) <= PageMask - 3)
        {
            *(uint*)(host + (nint)(linear & PageMask)) = value;
            MarkDirty(linear);
            return;
        }

        WriteLinearSlow(linear, value, 4);
    }

    /// <summary>
    /// For the bulk string instructions: the host address of [offset, offset + bytes) of a segment when all of it is
    /// within the limit and in one page the fast path may access (RAM in the map; for a write, not a page holding
    /// code), else null, and the caller goes element by element. A writer calls <see cref="MarkDirty(int, uint)"/>
    /// after its stores.
    /// </summary>
    public byte* HostRange(int seg, uint offset, uint bytes, bool write)
    {
        if (bytes == 0 || (long)offset + bytes - 1 > (write ? WriteLimit[seg] : ReadLimit[seg]))
        {
            return null;
        }

        uint linear = SegBase[seg] + offset;
        if ((linear & PageMask) + bytes > PageMask + 1)
        {
            return null;
        }

        nint host = (write ? writePages : readPages)[linear >> PageShift];
        return host == 0 ? null : (byte*)(host + (nint)(linear & PageMask));
    }

    /// <summary>Bytes from seg:offset to the end of its page.</summary>
    public uint BytesToPageEnd(int seg, uint offset) => PageMask + 1 - ((SegBase[seg] + offset) & PageMask);

    /// <summary>Marks the page of seg:offset dirty, after a store through <see cref="HostRange"/>.</summary>
    public void MarkDirty(int seg, uint offset) => MarkDirty(SegBase[seg] + offset);

    /// <summary>
    /// The page's dirty byte, after the data: a harvester that clears the byte and then reads the page sees the new
    /// data, or finds the byte set again at its next pass (stores are not reordered with stores on x86; the volatile
    /// write keeps the JIT from doing it).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void MarkDirty(uint linear) => Volatile.Write(ref dirtyMap[linear >> PageShift], (byte)1);

    /// <summary>Reads <paramref name="size"/> bytes at a linear (= physical) address, without segmentation.</summary>
    public uint ReadLinear(uint linear, int size)
    {
        nint host = readPages[linear >> PageShift];
        if (host != 0 && (linear & PageMask) <= PageMask + 1 - (uint)size)
        {
            byte* p = (byte*)(host + (nint)(linear & PageMask));
            return size == 1 ? *p : size == 2 ? *(ushort*)p : *(uint*)p;
        }

        return ReadLinearSlow(linear, size);
    }

    /// <summary>Writes <paramref name="size"/> bytes at a linear (= physical) address, without segmentation.</summary>
    public void WriteLinear(uint linear, uint value, int size)
    {
        nint host = writePages[linear >> PageShift];
        if (host != 0 && (linear & PageMask) <= PageMask + 1 - (uint)size)
        {
            byte* p = (byte*)(host + (nint)(linear & PageMask));
            switch (size)
            {
                case 1:
                    *p = (byte)value;
                    break;
                case 2:
                    *(ushort*)p = (ushort)value;
                    break;
                default:
                    *(uint*)p = value;
                    break;
            }

            MarkDirty(linear);
            return;
        }

        WriteLinearSlow(linear, value, size);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private byte ReadLinearSlow8(uint linear) => (byte)ReadLinearSlow(linear, 1);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private uint ReadLinearSlow(uint linear, int size)
    {
        if ((linear & PageMask) > PageMask + 1 - (uint)size)
        {
            // Straddles two pages: each byte from its own page.
            uint value = 0;
            for (int i = 0; i < size; i++)
            {
                value |= ReadLinearSlow(linear + (uint)i, 1) << (8 * i);
            }

            return value;
        }

        nint host = readPages[linear >> PageShift];
        if (host == 0)
        {
            host = memory.Map(linear >> PageShift);
        }

        if (host == 0)
        {
            Span<byte> data = stackalloc byte[4];
            io.MmioRead(linear, data[..size]);
            return size == 1 ? data[0] : size == 2 ? BitConverter.ToUInt16(data) : BitConverter.ToUInt32(data);
        }

        byte* p = (byte*)(host + (nint)(linear & PageMask));
        return size == 1 ? *p : size == 2 ? *(ushort*)p : *(uint*)p;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void WriteLinearSlow(uint linear, uint value, int size)
    {
        if ((linear & PageMask) > PageMask + 1 - (uint)size)
        {
            for (int i = 0; i < size; i++)
            {
                WriteLinearSlow(linear + (uint)i, (byte)(value >> (8 * i)), 1);
            }

            return;
        }

        uint page = linear >> PageShift;
        nint host = readPages[page];
        if (host == 0)
        {
            host = memory.Map(page);
        }

        if (host == 0)
        {
            Span<byte> data = stackalloc byte[4];
            BitConverter.TryWriteBytes(data, value);
            io.MmioWrite(linear, data[..size]);
            return;
        }

        // ROM: the store is dropped, as the chip drops it (its pages are never in the write table, so they come here).
        if (memory.IsReadOnly(page))
        {
            return;
        }

        // A page with decoded code: drop the code if these bytes are part of it, and end the block (it may be this one).
        if (memory.Code.NotifyWrite(linear, size))
        {
            Stop |= StopAfter;
        }

        byte* p = (byte*)(host + (nint)(linear & PageMask));
        switch (size)
        {
            case 1:
                *p = (byte)value;
                break;
            case 2:
                *(ushort*)p = (ushort)value;
                break;
            default:
                *(uint*)p = value;
                break;
        }

        MarkDirty(linear);
    }

    /// <summary>
    /// The careful limit check: expand-down segments, unusable (null) segments in protected mode, and the fault for an
    /// access outside the limit (#SS for the stack segment, #GP otherwise).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void CheckSegmentSlow(int seg, uint offset, int size, bool write)
    {
        ref Accelerator.State.Segment cache = ref Segments[seg];
        byte vector = seg == SegmentIndex.Ss ? ExceptionVector.StackFault : ExceptionVector.GeneralProtection;
        if (ProtectedMode)
        {
            if (cache.Unusable)
            {
                throw new CpuException(vector, 0);
            }

            bool code = (cache.Type & 0x8) != 0;
            if (write && (code || (cache.Type & 0x2) == 0))
            {
                throw new CpuException(vector, 0);
            }

            if (!write && code && (cache.Type & 0x2) == 0)
            {
                throw new CpuException(vector, 0);
            }
        }

        ulong last = (ulong)offset + (ulong)size - 1;
        bool expandDown = (cache.Type & 0xC) == 0x4;
        if (expandDown)
        {
            ulong upper = cache.DefaultBig ? 0xFFFF_FFFFul : 0xFFFFul;
            if (offset <= cache.Limit || last > upper)
            {
                throw new CpuException(vector, 0);
            }
        }
        else if (last > cache.Limit)
        {
            throw new CpuException(vector, 0);
        }
    }

    // The stack: pushes and pops of 2 or 4 bytes through SS, with SP or ESP as SS's B bit says.

    public void Push16(ushort value)
    {
        uint mask = StackMask;
        uint esp = Regs[RegisterIndex.Esp];
        uint top = (esp - 2) & mask;
        Write16(SegmentIndex.Ss, top, value);
        Regs[RegisterIndex.Esp] = (esp & ~mask) | top;
    }

    public void Push32(uint value)
    {
        uint mask = StackMask;
        uint esp = Regs[RegisterIndex.Esp];
        uint top = (esp - 4) & mask;
        Write32(SegmentIndex.Ss, top, value);
        Regs[RegisterIndex.Esp] = (esp & ~mask) | top;
    }

    public void Push(uint value, int size)
    {
        if (size == 4)
        {
            Push32(value);
        }
        else
        {
            Push16((ushort)value);
        }
    }

    public ushort Pop16()
    {
        uint mask = StackMask;
        uint esp = Regs[RegisterIndex.Esp];
        ushort value = Read16(SegmentIndex.Ss, esp & mask);
        Regs[RegisterIndex.Esp] = (esp & ~mask) | ((esp + 2) & mask);
        return value;
    }

    public uint Pop32()
    {
        uint mask = StackMask;
        uint esp = Regs[RegisterIndex.Esp];
        uint value = Read32(SegmentIndex.Ss, esp & mask);
        Regs[RegisterIndex.Esp] = (esp & ~mask) | ((esp + 4) & mask);
        return value;
    }

    public uint Pop(int size) => size == 4 ? Pop32() : Pop16();

    /// <summary>Reads the stack <paramref name="depth"/> bytes above the top without popping (for instructions that must not fault halfway).</summary>
    public uint PeekStack(uint depth, int size)
    {
        uint mask = StackMask;
        uint at = (Regs[RegisterIndex.Esp] + depth) & mask;
        return size == 4 ? Read32(SegmentIndex.Ss, at) : Read16(SegmentIndex.Ss, at);
    }
}
