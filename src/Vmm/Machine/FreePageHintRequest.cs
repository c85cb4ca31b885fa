using Vmm.Devices;

namespace Vmm.Machine;

/// <summary>
/// One outgoing migration's open request for free-page hints: while it is open the device's STATUS shows its id and
/// every hint the guest commits goes to the migration; disposing it closes the request.
/// </summary>
internal sealed class FreePageHintRequest : IFreePageHintSink, IDisposable
{
    private readonly FreePageHintDevice device;
    private readonly Action<ulong, ulong> onHint;
    private readonly uint id;

    public FreePageHintRequest(FreePageHintDevice device, Action<ulong, ulong> onHint)
    {
        this.device = device;
        this.onHint = onHint;
        id = device.BeginRequest(this);
    }

    public void OnFreePageHint(ulong guestAddress, ulong length) => onHint(guestAddress, length);

    public void Dispose() => device.EndRequest(id);
}
