using System.Buffers.Binary;

namespace Vmm.Bios;

/// <summary>
/// int 13h for disk 0x80 (<see cref="BootDisk"/>): reset, status, CHS read/write/verify (AH=02h/03h/04h), drive
/// parameters (AH=08h, 15h), the EDD extensions (AH=41h check, 42h/43h/44h LBA read/write/verify, 48h parameters).
/// Errors are reported as BIOSes do: CF set, AH = status (01h bad command or drive, 04h sector not found), AL or the
/// packet's count = sectors transferred (0). The status is kept in the BIOS data area for AH=01h.
/// </summary>
public sealed class DiskService(BiosMemory memory, BootDisk disk)
{
    private const byte BadCommand = 0x01;
    private const byte SectorNotFound = 0x04;
    private const byte Drive = 0x80;

    public void Handle(BiosFrame f)
    {
        if (f.AH == 0x01)
        {
            f.AH = memory.ReadByte(BiosDataArea.DiskStatus);
            f.Carry = f.AH != 0;
            return;
        }

        if (f.DL != Drive)
        {
            Finish(f, BadCommand);
            return;
        }

        switch (f.AH)
        {
            case 0x00 or 0x0C or 0x0D or 0x10 or 0x11:
                Finish(f, 0);
                break;
            case 0x02 or 0x03 or 0x04:
                Chs(f);
                break;
            case 0x08:
            {
                int maxCylinder = Math.Min(disk.Cylinders, 1024) - 1;
                f.CH = (byte)maxCylinder;
                f.CL = (byte)(BootDisk.SectorsPerTrack | ((maxCylinder >> 2) & 0xC0));
                f.DH = BootDisk.Heads - 1;
                f.DL = 1; // one hard disk
                Finish(f, 0);
                break;
            }

            case 0x15:
                f.CX = (ushort)(disk.SectorCount >> 16);
                f.DX = (ushort)disk.SectorCount;
                Finish(f, 0);
                f.AH = 0x03; // a hard disk
                break;
            case 0x41:
                if (f.BX != 0x55AA)
                {
                    Finish(f, BadCommand);
                    break;
                }

                f.BX = 0xAA55;
                f.CX = 0x0001; // the packet calls 42h–44h, 47h, 48h
                Finish(f, 0);
                f.AH = 0x30; // EDD 3.0
                break;
            case 0x42 or 0x43 or 0x44:
                Lba(f);
                break;
            case 0x48:
                Parameters(f);
                break;
            default:
                Finish(f, BadCommand);
                break;
        }
    }

    private void Chs(BiosFrame f)
    {
        int count = f.AL;
        int cylinder = f.CH | ((f.CL & 0xC0) << 2);
        int sector = f.CL & 0x3F;
        int head = f.DH;
        if (count == 0 || sector == 0 || sector > BootDisk.SectorsPerTrack || head >= BootDisk.Heads)
        {
            f.AL = 0;
            Finish(f, BadCommand);
            return;
        }

        long lba = (((long)cylinder * BootDisk.Heads) + head) * BootDisk.SectorsPerTrack + (sector - 1);
        if (!disk.Contains(lba, count))
        {
            f.AL = 0;
            Finish(f, SectorNotFound);
            return;
        }

        Transfer(f.AH == 0x03, f.AH == 0x04, lba, count, BiosMemory.Linear(f.Es, f.BX));
        f.AL = (byte)count;
        Finish(f, 0);
    }

    /// <summary>The disk address packet at DS:SI: size, 0, count (word), buffer offset, segment, LBA (qword).</summary>
    private void Lba(BiosFrame f)
    {
        ulong packet = BiosMemory.Linear(f.Ds, f.SI);
        Span<byte> p = stackalloc byte[16];
        memory.Read(packet, p);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(p[2..]);
        ulong buffer = BiosMemory.Linear(BinaryPrimitives.ReadUInt16LittleEndian(p[6..]), BinaryPrimitives.ReadUInt16LittleEndian(p[4..]));
        long lba = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(p[8..]), long.MaxValue / 2);
        if (p[0] < 0x10 || !disk.Contains(lba, count))
        {
            memory.WriteWord(packet + 2, 0);
            Finish(f, p[0] < 0x10 ? BadCommand : SectorNotFound);
            return;
        }

        Transfer(f.AH == 0x43, f.AH == 0x44, lba, count, buffer);
        Finish(f, 0);
    }

    private void Transfer(bool write, bool verify, long lba, int count, ulong buffer)
    {
        if (verify || count == 0)
        {
            return;
        }

        if (write)
        {
            byte[] data = new byte[count * BootDisk.SectorSize];
            memory.Read(buffer, data);
            disk.Write(lba, data);
        }
        else
        {
            memory.Write(buffer, disk.Read(lba, count), mayHoldCode: true);
        }
    }

    /// <summary>AH=48h: the result buffer at DS:SI (EDD 1.x layout, 26 bytes).</summary>
    private void Parameters(BiosFrame f)
    {
        ulong buffer = BiosMemory.Linear(f.Ds, f.SI);
        if (memory.ReadWord(buffer) < 0x1A)
        {
            Finish(f, BadCommand);
            return;
        }

        Span<byte> b = stackalloc byte[0x1A];
        BinaryPrimitives.WriteUInt16LittleEndian(b, 0x1A);
        BinaryPrimitives.WriteUInt16LittleEndian(b[2..], 0x0002); // CHS information valid
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], (uint)disk.Cylinders);
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], BootDisk.Heads);
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], BootDisk.SectorsPerTrack);
        BinaryPrimitives.WriteUInt64LittleEndian(b[16..], (ulong)disk.SectorCount);
        BinaryPrimitives.WriteUInt16LittleEndian(b[24..], BootDisk.SectorSize);
        memory.Write(buffer, b);
        Finish(f, 0);
    }

    private void Finish(BiosFrame f, byte status)
    {
        memory.WriteByte(BiosDataArea.DiskStatus, status);
        if (status == 0)
        {
            f.Succeed();
        }
        else
        {
            f.Fail(status);
        }
    }
}
