using Vmm.Devices;

namespace Vmm.Devices.Tests;

/// <summary>An MMIO device that records every access and answers reads with a recognisable per-offset pattern.</summary>
internal sealed class RecordingMmioDevice(byte fill = 0xA5) : IMmioDevice
{
    public List<(ulong Offset, int Length)> Reads { get; } = [];

    public List<(ulong Offset, byte[] Data)> Writes { get; } = [];

    /// <summary>Byte i of a read at offset o is fill ^ low byte of (o + i).</summary>
    public void Read(ulong offset, Span<byte> data)
    {
        lock (Reads)
        {
            Reads.Add((offset, data.Length));
        }

        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(fill ^ (byte)(offset + (ulong)i));
        }
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        lock (Writes)
        {
            Writes.Add((offset, data.ToArray()));
        }
    }
}
