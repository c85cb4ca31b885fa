namespace Vmm.Devices;

/// <summary>A device on the memory-mapped I/O space.</summary>
/// <remarks>
/// <paramref name="offset"/> in both methods is relative to the base address the device was registered at.
/// The span length is the access width; the bus routes an access by its first byte only.
/// </remarks>
public interface IMmioDevice
{
    void Read(ulong offset, Span<byte> data);

    void Write(ulong offset, ReadOnlySpan<byte> data);
}
