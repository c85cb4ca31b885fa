namespace Vmm.Migration;

/// <summary>
/// A machine whose guest can report free memory to an outgoing migration (the free-page-hint device). Optional:
/// <see cref="Source.MigrationSource"/> asks for hints only when its machine implements this.
/// </summary>
public interface IFreePageHinting
{
    /// <summary>
    /// Asks the guest for free-page hints until the returned handle is disposed: each hint the guest commits meanwhile
    /// calls <paramref name="onHint"/> (guest-physical address, length) on a vCPU thread, with a 4 KiB aligned,
    /// non-empty range inside one RAM block. Disposing is a barrier: once it returns, no call is in progress and none
    /// will follow.
    /// </summary>
    IDisposable RequestFreePageHints(Action<ulong, ulong> onHint);
}
