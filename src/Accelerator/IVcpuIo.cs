namespace Vmm.Accelerator;

/// <summary>
/// The machine's devices as a vCPU reaches them: every port access and every access to guest-physical memory that
/// is not RAM. Called on the vCPU's thread, one access at a time (a string I/O instruction is one call per element).
/// </summary>
public interface IVcpuIo
{
    void PortRead(ushort port, Span<byte> data);

    void PortWrite(ushort port, ReadOnlySpan<byte> data);

    void MmioRead(ulong address, Span<byte> data);

    void MmioWrite(ulong address, ReadOnlySpan<byte> data);
}
