using System.Reflection;
using Iced.Intel;
using Vmm.CpuSemantics.Tests.Cases;
using Vmm.CpuSemantics.Tests.Harness;
using IcedCode = Iced.Intel.Code;

namespace Vmm.CpuSemantics.Tests;

/// <summary>
/// The harness checked without running anything: image layout, the result parser, batching, and that every family
/// generates the same valid cases on every run. These need neither QEMU nor vmm.
/// </summary>
public sealed class HarnessOfflineTests
{
    [Fact]
    public void ImageIsABootSectorFollowedByTheSignedHarnessAndOneRecordPerCase()
    {
        var image = TestImageBuilder.Build(SampleCases(5));

        Assert.Equal(0, image.Bytes.Length % BootSector.Size);
        Assert.Equal(0x55, image.Bytes[BootSector.Size - 2]);
        Assert.Equal(0xAA, image.Bytes[BootSector.Size - 1]);
        // vmm loads the file at 0x7C00, so the harness is at its address with its signature: the boot sector checks that.
        var harness = MemoryMap.HarnessOrigin - MemoryMap.LoadAddress;
        Assert.True(image.Bytes.AsSpan(harness, 8).SequenceEqual(TestImageBuilder.Signature));
        Assert.True(MemoryMap.LoadAddress + image.Bytes.Length <= MemoryMap.ImageLimit);
        // The boot sector reads exactly the sectors after itself.
        Assert.Equal(image.Bytes.Length / BootSector.Size - 1, SectorsToLoad(image.Bytes));
    }

    [Fact]
    public void RecordsHoldEachCasesInitialStateAndData()
    {
        var cases = SampleCases(3);
        var image = TestImageBuilder.Build(cases);
        var stride = RecordLayout.Stride(image.DataLength);

        // Find the first record by its known register block, then check the others follow at the stride, last in the
        // image and paragraph-aligned (the harness points FS at each).
        var first = FindRecord(image.Bytes, cases[0].Initial);
        Assert.Equal(0, (MemoryMap.LoadAddress + first) % 16);
        Assert.True(image.Bytes.Length - (first + cases.Count * stride) < BootSector.Size, "the records come last in the image");
        for (var i = 0; i < cases.Count; i++)
        {
            var record = image.Bytes.AsSpan(first + i * stride, stride);
            for (var r = Gpr.Eax; r <= Gpr.Edi; r++)
            {
                Assert.Equal(cases[i].Initial[r], BitConverter.ToUInt32(record[RecordLayout.RegisterOffset(r)..]));
            }

            Assert.Equal(cases[i].Initial.Eflags, BitConverter.ToUInt32(record[RecordLayout.Eflags..]));
            Assert.Equal((uint)i, BitConverter.ToUInt32(record[RecordLayout.Index..]));
            Assert.True(record.Slice(RecordLayout.Data, cases[i].Initial.Data.Length).SequenceEqual(cases[i].Initial.Data));
        }
    }

    [Fact]
    public void ParserReadsACompleteStreamAndLocatesWhereABrokenOneStops()
    {
        var cases = SampleCases(3);
        var image = TestImageBuilder.Build(cases);
        var stream = SyntheticStream(image, results: 3, trailer: true);

        var complete = ResultDump.Parse(Prefixed("SeaBIOS noise\r\n"u8, stream), image);
        Assert.True(complete.Complete, complete.Problem);
        Assert.Equal(3, complete.Outcomes.Count);
        Assert.Equal(0x1000_0001u, complete.Outcomes[1][Gpr.Ecx]);
        Assert.Equal(6, complete.Outcomes[2].Exception);
        Assert.Null(complete.Outcomes[0].Exception);
        Assert.True(complete.Outcomes[1].BranchTaken);

        var cut = ResultDump.Parse(stream.AsSpan(0, stream.Length - 20), image);
        Assert.False(cut.Complete);
        Assert.Equal(2, cut.Outcomes.Count);
        Assert.Contains("after the results of 2 of 3", cut.Problem, StringComparison.Ordinal);

        var noTrailer = ResultDump.Parse(SyntheticStream(image, results: 3, trailer: false), image);
        Assert.False(noTrailer.Complete);
        Assert.Equal(3, noTrailer.Outcomes.Count);

        Assert.Contains("no result header", ResultDump.Parse("garbage"u8, image).Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void ComparisonIgnoresFlagsOutsideTheArithmeticOnesAndDf()
    {
        var registers = new uint[8];
        var qemu = new CaseOutcome(registers, EFlags.Reserved1 | EFlags.CF, null, false, [1, 2]);
        Assert.Empty(CaseComparison.Differences(qemu, qemu with { Eflags = qemu.Eflags | EFlags.AC | EFlags.ID }));
        Assert.Equal(["EFLAGS"], CaseComparison.Differences(qemu, qemu with { Eflags = qemu.Eflags | EFlags.DF }));
        Assert.Equal(["EBX", "exception", "data"], CaseComparison.Differences(
            qemu,
            qemu with { Registers = [0, 0, 0, 1, 0, 0, 0, 0], Exception = 0, Data = [1, 3] }));
    }

    [Fact]
    public void BatchesSplitWhenRecordsOrStubsWouldNotFit()
    {
        var factory = new CaseFactory(seed: 9);
        var many = Enumerable.Range(0, CaseBatches.MaxCasesPerImage + 10)
            .Select(_ => CaseFactory.Case("NOP", factory.NextState(), Instruction.Create(IcedCode.Nopw)))
            .ToList();

        var batches = CaseBatches.Split(many);

        Assert.Equal(2, batches.Count);
        Assert.Equal(many.Count, batches.Sum(b => b.Count));
        Assert.All(batches, b => TestImageBuilder.Build(b));
    }

    /// <summary>Every family: deterministic (same bytes and states on every call) and buildable into images.</summary>
    [Theory]
    [MemberData(nameof(Families))]
    public void FamilyGeneratesTheSameBuildableCasesEveryTime(string family)
    {
        var first = Generate(family);
        var second = Generate(family);

        Assert.NotEmpty(first);
        Assert.Equal(first.Count, second.Count);
        for (var i = 0; i < first.Count; i++)
        {
            Assert.Equal(first[i].Form, second[i].Form);
            Assert.Equal(first[i].Code, second[i].Code);
            Assert.Equal(first[i].Initial.Data, second[i].Initial.Data);
            Assert.Equal(first[i].Initial.Eflags, second[i].Initial.Eflags);
            Assert.Equal(Enum.GetValues<Gpr>().Select(r => first[i].Initial[r]), Enum.GetValues<Gpr>().Select(r => second[i].Initial[r]));
            // No case may start with TF or IF set, or with SP anywhere but the case stack.
            Assert.Equal(0u, first[i].Initial.Eflags & (EFlags.TF | EFlags.IF));
            Assert.Equal(MemoryMap.DefaultCaseStackPointer, (ushort)first[i].Initial[Gpr.Esp]);
        }

        foreach (var batch in CaseBatches.Split(first))
        {
            TestImageBuilder.Build(batch);
        }
    }

    public static TheoryData<string> Families()
    {
        var data = new TheoryData<string>();
        foreach (var type in FamilyTypes())
        {
            data.Add(type.Name);
        }

        return data;
    }

    private static IEnumerable<Type> FamilyTypes() =>
        typeof(HarnessOfflineTests).Assembly.GetTypes()
            .Where(t => t.Namespace == "Vmm.CpuSemantics.Tests.Families" && t.GetMethod("Cases", BindingFlags.Public | BindingFlags.Static) is not null)
            .OrderBy(t => t.Name, StringComparer.Ordinal);

    private static List<TestCase> Generate(string family)
    {
        var method = FamilyTypes().Single(t => t.Name == family).GetMethod("Cases", BindingFlags.Public | BindingFlags.Static)!;
        return ((IEnumerable<TestCase>)method.Invoke(null, null)!).ToList();
    }

    private static List<TestCase> SampleCases(int count)
    {
        var factory = new CaseFactory(seed: 4);
        return Enumerable.Range(0, count).Select(i =>
        {
            var state = factory.NextState();
            state.Data = factory.NextBytes(16 + 4 * i);
            return CaseFactory.Case("ADD r/m32, r32", state, Instruction.Create(IcedCode.Add_rm32_r32, Register.EAX, Register.EBX));
        }).ToList();
    }

    /// <summary>The "sectors after the boot sector" word the boot sector's loader counts down, found by value.</summary>
    private static int SectorsToLoad(byte[] image)
    {
        var expected = (ushort)(image.Length / BootSector.Size - 1);
        var sector = image.AsSpan(0, BootSector.Size);
        for (var i = 0; i + 1 < sector.Length; i++)
        {
            if (BitConverter.ToUInt16(sector[i..]) == expected)
            {
                return expected;
            }
        }

        return -1;
    }

    private static int FindRecord(byte[] image, CaseState state)
    {
        var registers = new byte[32];
        for (var r = Gpr.Eax; r <= Gpr.Edi; r++)
        {
            BitConverter.TryWriteBytes(registers.AsSpan(4 * (int)r), state[r]);
        }

        var at = image.AsSpan().IndexOf(registers);
        Assert.True(at > 0, "the first case's record is in the image");
        return at;
    }

    /// <summary>A result stream as the harness sends it: header, per case slot + data, trailer.</summary>
    private static byte[] SyntheticStream(TestImage image, int results, bool trailer)
    {
        var stream = new List<byte>();
        stream.AddRange(ResultLayout.HeaderMagic.ToArray());
        stream.AddRange(BitConverter.GetBytes((uint)image.Cases.Count));
        stream.AddRange(BitConverter.GetBytes((ushort)image.DataLength));
        stream.AddRange(BitConverter.GetBytes((ushort)ResultLayout.SlotSize));
        for (var i = 0; i < results; i++)
        {
            var slot = new byte[ResultLayout.SlotSize];
            BitConverter.TryWriteBytes(slot.AsSpan(ResultLayout.Index), (uint)i);
            BitConverter.TryWriteBytes(slot.AsSpan(ResultLayout.RegisterOffset(Gpr.Ecx)), 0x1000_0000u + (uint)i);
            BitConverter.TryWriteBytes(slot.AsSpan(ResultLayout.Eflags), EFlags.Reserved1);
            slot[ResultLayout.Exception] = (byte)(i == 2 ? 7 : 0);
            slot[ResultLayout.BranchTaken] = (byte)(i == 1 ? 1 : 0);
            slot[ResultLayout.Completion] = ResultLayout.CompletionMarker;
            stream.AddRange(slot);
            stream.AddRange(new byte[image.DataLength]);
        }

        if (trailer)
        {
            stream.AddRange(ResultLayout.TrailerMagic.ToArray());
        }

        return stream.ToArray();
    }

    private static byte[] Prefixed(ReadOnlySpan<byte> prefix, byte[] stream) => [.. prefix, .. stream];
}
