using Vmm.Devices;

namespace Vmm.Bios;

/// <summary>
/// Disk 0x80: the guest image as a hard disk of 512-byte sectors (the last one padded with zeros), with a made-up
/// geometry of 16 heads and 63 sectors per track for CHS calls. Writes go to this in-memory copy, and through to the
/// image file only with --disk-writable. The copy travels in the BIOS's state section, so a migrated guest keeps
/// what it wrote and the destination needs no image.
/// </summary>
public sealed class BootDisk
{
    public const int SectorSize = 512;
    public const int Heads = 16;
    public const int SectorsPerTrack = 63;

    private readonly string? writeThroughPath;
    private byte[] sectors;

    public BootDisk(ReadOnlySpan<byte> image, string? writeThroughPath)
    {
        sectors = new byte[Math.Max(1, (image.Length + SectorSize - 1) / SectorSize) * SectorSize];
        image.CopyTo(sectors);
        this.writeThroughPath = writeThroughPath;
    }

    public long SectorCount => sectors.Length / SectorSize;

    public int Cylinders => (int)Math.Max(1, (SectorCount + (Heads * SectorsPerTrack) - 1) / (Heads * SectorsPerTrack));

    /// <summary>The first sector (what a BIOS loads at 0x7C00).</summary>
    public ReadOnlySpan<byte> BootSector => sectors.AsSpan(0, SectorSize);

    public bool Contains(long lba, long count) => lba >= 0 && count >= 0 && lba + count <= SectorCount;

    public ReadOnlySpan<byte> Read(long lba, int count) => sectors.AsSpan(checked((int)(lba * SectorSize)), count * SectorSize);

    public void Write(long lba, ReadOnlySpan<byte> data)
    {
        data.CopyTo(sectors.AsSpan(checked((int)(lba * SectorSize))));
        if (writeThroughPath is not null)
        {
            using var file = new FileStream(writeThroughPath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
            file.Position = lba * SectorSize;
            file.Write(data);
        }
    }

    public void Save(DeviceStateWriter w)
    {
        w.WriteInt32(sectors.Length);
        w.WriteBytes(sectors);
    }

    public void Load(ref DeviceStateReader r)
    {
        int length = r.ReadInt32();
        if (length <= 0 || length % SectorSize != 0 || length > 64 * 1024 * 1024)
        {
            throw new InvalidDataException($"state section 'bios': a disk of {length} bytes is not understood");
        }

        sectors = r.ReadBytes(length).ToArray();
    }
}
