namespace Vmm.Devices;

/// <summary>A device on the x86 port-I/O space.</summary>
/// <remarks>
/// <paramref name="offset"/> in both methods is relative to the base port the device was registered at,
/// so a device model never needs to know where it lives. The span length is the access width
/// (1, 2 or 4 bytes for <c>in</c>/<c>out</c>); the bus routes an access by its first port only.
/// </remarks>
public interface IPortDevice
{
    void Read(ushort offset, Span<byte> data);

    void Write(ushort offset, ReadOnlySpan<byte> data);
}
