using Vmm.Devices;

namespace Vmm.Bench;

/// <summary>A COM1 that discards what the guest prints: the benchmarks measure, they do not read.</summary>
internal sealed class NullSerialSink : ISerialSink
{
    public void Write(ReadOnlySpan<byte> bytes)
    {
    }
}
