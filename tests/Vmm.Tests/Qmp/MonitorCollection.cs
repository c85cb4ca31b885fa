namespace Vmm.Tests.Qmp;

/// <summary>
/// The monitor tests that boot guests run one at a time and alone: several spinning guests at once on a 2-core
/// machine would make every wait-for-condition slow, and the robustness test wants the CPU to itself.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MonitorCollection
{
    public const string Name = "monitor";
}
