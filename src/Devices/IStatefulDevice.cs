namespace Vmm.Devices;

/// <summary>
/// Device state that is saved and restored across live migration as an opaque, versioned section.
/// Migration never interprets the bytes; it only carries <see cref="SectionName"/>,
/// <see cref="SectionVersion"/> and the payload to the destination.
/// </summary>
public interface IStatefulDevice
{
    /// <summary>Stable identifier that matches the same device on both sides, e.g. <c>serial@0x3f8</c>.</summary>
    string SectionName { get; }

    /// <summary>The payload format this build writes. Bump it whenever the layout changes.</summary>
    int SectionVersion { get; }

    byte[] SaveState();

    /// <summary>Replaces the device's state with a payload produced by <see cref="SaveState"/>.</summary>
    /// <exception cref="InvalidDataException">
    /// The version is not one this build understands, or the payload is truncated, too long or malformed.
    /// The device is left unchanged in that case.
    /// </exception>
    void RestoreState(int version, ReadOnlySpan<byte> state);
}
