namespace Vmm.Ram;

/// <summary>The outcome of a placement: what happened, how many bytes were placed, and the kernel's errno (0 when none).</summary>
public readonly record struct PlacementResult(PlacementStatus Status, ulong Bytes, int Errno = 0)
{
    public bool IsPlaced => Status == PlacementStatus.Placed;
}
