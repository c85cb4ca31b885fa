using Vmm.Devices;

namespace Vmm.Bios;

/// <summary>
/// The BIOS ROM as the MMIO bus sees it. On KVM the ROM is a read-only memslot: the guest's loads are served from
/// memory without an exit, its stores exit as MMIO writes and end here, dropped, as a ROM drops them (without this
/// they would be logged as accesses to an unclaimed address). The software CPU drops them before any bus.
/// </summary>
public sealed class BiosRomMmio(BiosMemory memory) : IMmioDevice
{
    /// <summary>Never reached while the memslot is there; answers with the ROM's bytes all the same.</summary>
    public void Read(ulong offset, Span<byte> data) => memory.Read(BiosLayout.RomBase + offset, data);

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
    }
}
