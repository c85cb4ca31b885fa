namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>A bootable test image and the cases it runs, in order.</summary>
/// <param name="Bytes">The image: boot sector, harness, stubs, case records; a whole number of 512-byte sectors.</param>
/// <param name="Cases">The cases, in the order the image runs them and reports them.</param>
/// <param name="DataLength">How many bytes of the data area each case initialises and reports.</param>
public sealed record TestImage(byte[] Bytes, IReadOnlyList<TestCase> Cases, int DataLength);
