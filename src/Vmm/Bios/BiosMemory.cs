using System.Buffers.Binary;
using Vmm.Accelerator;
using Vmm.Machine;
using Vmm.Ram;

namespace Vmm.Bios;

/// <summary>
/// Guest memory as the BIOS services touch it. Their writes bypass both accelerators' dirty logs (KVM's and the
/// software CPU's), so each write marks its pages dirty itself — a migration in flight sends them again — and tells
/// the accelerator the content changed (the software CPU drops code it decoded there: a disk read may load code).
/// </summary>
public sealed class BiosMemory(GuestMemory memory, IGuestMemoryMap map)
{
    public static ulong Linear(ushort segment, ushort offset) => ((ulong)segment << 4) + offset;

    public void Read(ulong address, Span<byte> destination)
    {
        int got = memory.Read(address, destination);
        destination[got..].Fill(0xFF); // outside RAM reads as all-ones, as the guest would see it
    }

    public byte ReadByte(ulong address)
    {
        Span<byte> b = stackalloc byte[1];
        Read(address, b);
        return b[0];
    }

    public ushort ReadWord(ulong address)
    {
        Span<byte> b = stackalloc byte[2];
        Read(address, b);
        return BinaryPrimitives.ReadUInt16LittleEndian(b);
    }

    public uint ReadDword(ulong address)
    {
        Span<byte> b = stackalloc byte[4];
        Read(address, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    /// <summary>Writes what falls inside RAM (the rest is dropped, as the guest's own writes would be).</summary>
    public void Write(ulong address, ReadOnlySpan<byte> source, bool mayHoldCode = false)
    {
        int done = 0;
        while (done < source.Length)
        {
            ulong at = address + (ulong)done;
            RamBlock? block = memory.Registry.FindByGuestAddress(at);
            if (block is null)
            {
                done++;
                continue;
            }

            ulong offset = at - block.GuestBase;
            int chunk = (int)Math.Min((ulong)(source.Length - done), block.UsedLength - offset);
            memory.Write(at, source.Slice(done, chunk));
            ulong firstPage = offset / DirtyBitmap.PageSize;
            ulong lastPage = (offset + (ulong)chunk - 1) / DirtyBitmap.PageSize;
            block.DirtyBitmap.SetRange(firstPage, lastPage - firstPage + 1);
            if (mayHoldCode)
            {
                map.ContentChanged(block, firstPage * DirtyBitmap.PageSize, (lastPage - firstPage + 1) * DirtyBitmap.PageSize);
            }

            done += chunk;
        }
    }

    public void WriteByte(ulong address, byte value) => Write(address, [value]);

    public void WriteWord(ulong address, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        Write(address, b);
    }

    public void WriteDword(ulong address, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        Write(address, b);
    }
}
