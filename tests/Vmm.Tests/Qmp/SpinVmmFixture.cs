namespace Vmm.Tests.Qmp;

/// <summary>One running spin guest shared by the tests that only read state or send bad input (never stop or reset it).</summary>
public sealed class SpinVmmFixture : IDisposable
{
    private readonly Lazy<MonitoredVmm> vmm = new(() => MonitoredVmm.Start("spin"));

    /// <summary>Started on first use, so a host without KVM skips instead of failing in the fixture.</summary>
    public MonitoredVmm Vmm => vmm.Value;

    public void Dispose()
    {
        if (vmm.IsValueCreated)
        {
            vmm.Value.Dispose();
        }
    }
}
