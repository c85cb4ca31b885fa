using Vmm.Devices;

namespace Vmm.Devices.Tests;

/// <summary>Collects everything the UART transmits, and how many sink calls it took.</summary>
internal sealed class RecordingSerialSink : ISerialSink
{
    private readonly List<byte> _bytes = [];

    public int WriteCalls { get; private set; }

    public byte[] Bytes => [.. _bytes];

    public void Write(ReadOnlySpan<byte> bytes)
    {
        WriteCalls++;
        _bytes.AddRange(bytes.ToArray());
    }
}
