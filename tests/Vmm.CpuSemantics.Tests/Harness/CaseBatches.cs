namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// Splits a list of cases into images that fit the memory map: stubs below 64 KiB, records below
/// <see cref="MemoryMap.ImageLimit"/>, and at most <see cref="MaxCasesPerImage"/> cases so one image stays quick.
/// </summary>
public static class CaseBatches
{
    public const int MaxCasesPerImage = 4000;

    /// <summary>Room kept for the harness code itself (about 1.3 KiB today) in front of the stubs.</summary>
    private const int HarnessReserve = 0x1000;

    private const int StubBudget = TestImageBuilder.CodeLimit - MemoryMap.HarnessOrigin - HarnessReserve;

    private const int RecordBudget = MemoryMap.ImageLimit - TestImageBuilder.CodeLimit;

    public static IReadOnlyList<IReadOnlyList<TestCase>> Split(IReadOnlyList<TestCase> cases)
    {
        var batches = new List<IReadOnlyList<TestCase>>();
        var current = new List<TestCase>();
        var stubKeys = new HashSet<string>(StringComparer.Ordinal);
        var stubBytes = 0;
        var longestData = 0;
        foreach (var testCase in cases)
        {
            var key = $"{testCase.Kind}:{Convert.ToHexString(testCase.Code)}";
            var newStub = !stubKeys.Contains(key);
            var stride = RecordLayout.Stride(TestImageBuilder.DataLengthFor(Math.Max(longestData, testCase.Initial.Data.Length)));
            var fits = current.Count < MaxCasesPerImage
                && stubBytes + (newStub ? TestImageBuilder.StubSize(testCase) : 0) <= StubBudget
                && (current.Count + 1) * stride <= RecordBudget;
            if (!fits && current.Count > 0)
            {
                batches.Add(current);
                current = [];
                stubKeys.Clear();
                stubBytes = 0;
                longestData = 0;
                newStub = true;
            }

            current.Add(testCase);
            if (newStub)
            {
                stubKeys.Add(key);
                stubBytes += TestImageBuilder.StubSize(testCase);
            }

            longestData = Math.Max(longestData, testCase.Initial.Data.Length);
        }

        if (current.Count > 0)
        {
            batches.Add(current);
        }

        return batches;
    }
}
