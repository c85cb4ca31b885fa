using Vmm.Accelerator;
using Vmm.Devices;

namespace Vmm.Machine;

/// <summary>The machine's two buses as a vCPU reaches them: ports to <see cref="PortIoBus"/>, non-RAM addresses to <see cref="MmioBus"/>.</summary>
public sealed class MachineIo(PortIoBus ports, MmioBus mmio) : IVcpuIo
{
    public void PortRead(ushort port, Span<byte> data) => ports.Read(port, data);

    public void PortWrite(ushort port, ReadOnlySpan<byte> data) => ports.Write(port, data);

    public void MmioRead(ulong address, Span<byte> data) => mmio.Read(address, data);

    public void MmioWrite(ulong address, ReadOnlySpan<byte> data) => mmio.Write(address, data);
}
