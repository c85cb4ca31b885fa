using Vmm.Devices;

namespace Vmm.Devices.Tests;

/// <summary>A port device that records every access and answers reads with a recognisable per-offset pattern.</summary>
internal sealed class RecordingPortDevice(byte fill = 0x5A) : IPortDevice
{
    public List<(ushort Offset, int Length)> Reads { get; } = [];

    public List<(ushort Offset, byte[] Data)> Writes { get; } = [];

    /// <summary>Byte i of a read at offset o is fill ^ (o + i), so tests can check the offset the device saw.</summary>
    public void Read(ushort offset, Span<byte> data)
    {
        lock (Reads)
        {
            Reads.Add((offset, data.Length));
        }

        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(fill ^ (offset + i));
        }
    }

    public void Write(ushort offset, ReadOnlySpan<byte> data)
    {
        lock (Writes)
        {
            Writes.Add((offset, data.ToArray()));
        }
    }
}
