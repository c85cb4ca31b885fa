namespace Vmm.Devices;

/// <summary>
/// Where <see cref="FreePageHintDevice"/> delivers the hints a guest commits while a request is open: in the VMM, the
/// outgoing migration that asked for them.
/// </summary>
public interface IFreePageHintSink
{
    /// <summary>
    /// The guest says [<paramref name="guestAddress"/>, +<paramref name="length"/>) is free: its content does not
    /// matter to it. The range is 4 KiB aligned, non-empty and inside one RAM block (the device checked).
    /// </summary>
    /// <remarks>
    /// Runs on the vCPU thread that made the committing write, under the device's lock: keep it short and never call
    /// back into the device from here.
    /// </remarks>
    void OnFreePageHint(ulong guestAddress, ulong length);
}
