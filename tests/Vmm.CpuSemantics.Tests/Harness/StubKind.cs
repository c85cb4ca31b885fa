namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>How the harness wraps a case's code.</summary>
public enum StubKind
{
    /// <summary>The code runs, then falls through to the harness.</summary>
    Plain,

    /// <summary>
    /// The code ends in a branch whose target is 3 bytes past its end: falling through reaches a 3-byte jump back to
    /// the harness, the branch reaches a path that records "taken" first.
    /// </summary>
    Branch,
}
