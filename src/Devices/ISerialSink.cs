namespace Vmm.Devices;

/// <summary>Where transmitted UART bytes go. The VMM supplies stdout, a file, or nothing.</summary>
/// <remarks>Called from the vCPU thread with no device lock held, so an implementation may block.</remarks>
public interface ISerialSink
{
    void Write(ReadOnlySpan<byte> bytes);
}
