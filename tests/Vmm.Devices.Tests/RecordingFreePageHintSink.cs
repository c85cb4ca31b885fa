using Vmm.Devices;

namespace Vmm.Devices.Tests;

/// <summary>A free-page-hint sink that records every hint it is handed, in order.</summary>
internal sealed class RecordingFreePageHintSink : IFreePageHintSink
{
    public List<(ulong Address, ulong Length)> Hints { get; } = [];

    public void OnFreePageHint(ulong guestAddress, ulong length)
    {
        lock (Hints)
        {
            Hints.Add((guestAddress, length));
        }
    }
}
