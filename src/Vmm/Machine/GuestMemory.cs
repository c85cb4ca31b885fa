using Vmm.Ram;

namespace Vmm.Machine;

/// <summary>
/// Guest-physical reads and writes through the RAM block registry, for the loader, diagnostics and the monitor.
/// Addresses outside every block are simply not there: reads stop short and report how much they got. Reads and
/// writes copy through libc (<see cref="RamBlock.ReadSafely"/>), so a monitor dump on a postcopy destination waits for missing
/// pages without stalling the garbage collector.
/// </summary>
public sealed class GuestMemory(RamBlockRegistry registry)
{
    public RamBlockRegistry Registry => registry;

    /// <summary>Copies guest memory into <paramref name="destination"/>; returns the bytes read before the first hole.</summary>
    public int Read(ulong guestAddress, Span<byte> destination)
    {
        int done = 0;
        while (done < destination.Length)
        {
            ulong address = guestAddress + (ulong)done;
            RamBlock? block = registry.FindByGuestAddress(address);
            if (block is null)
            {
                break;
            }

            ulong offset = address - block.GuestBase;
            int chunk = (int)Math.Min((ulong)(destination.Length - done), block.UsedLength - offset);
            block.ReadSafely(offset, destination.Slice(done, chunk));
            done += chunk;
        }

        return done;
    }

    /// <summary>Writes all of <paramref name="source"/> or throws if any byte would fall outside RAM.</summary>
    public void Write(ulong guestAddress, ReadOnlySpan<byte> source)
    {
        int done = 0;
        while (done < source.Length)
        {
            ulong address = guestAddress + (ulong)done;
            RamBlock block = registry.FindByGuestAddress(address)
                ?? throw new ArgumentOutOfRangeException(nameof(guestAddress), $"guest address 0x{address:x} is not backed by RAM");
            ulong offset = address - block.GuestBase;
            int chunk = (int)Math.Min((ulong)(source.Length - done), block.UsedLength - offset);
            block.WriteSafely(offset, source.Slice(done, chunk));
            done += chunk;
        }
    }
}
