using System.Collections.Concurrent;
using Iced.Intel;
using Vmm.CpuSemantics.Tests.Harness;
using IcedCode = Iced.Intel.Code;

namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>
/// Whether vmm can run the harness at all, found out once per accelerator and test run with an image of a few NOPs.
/// A CPU that cannot (still missing a jump, PUSHFD, REP OUTSB, …) would otherwise fail every family test only after
/// the stall timeout each; with the probe they fail at once, all pointing at the same cause.
/// </summary>
public static class HarnessProbe
{
    private static readonly ConcurrentDictionary<string, Lazy<string?>> Results = new(StringComparer.Ordinal);

    /// <summary>Null when vmm ran the probe image to the end, else what went wrong.</summary>
    public static string? ProblemWith(string accelerator) =>
        Results.GetOrAdd(accelerator, a => new Lazy<string?>(() => Probe(a))).Value;

    private static string? Probe(string accelerator)
    {
        var state = new CaseState { Eflags = EFlags.Reserved1 };
        state[Gpr.Esp] = MemoryMap.DefaultCaseStackPointer;
        var nop = new TestCase("NOP", Code16.Encode(Instruction.Create(IcedCode.Nopw)), StubKind.Plain, state);
        var image = TestImageBuilder.Build([nop, nop with { Initial = state.Clone() }]);
        var directory = Directory.CreateTempSubdirectory("vmm-cpusem-probe-").FullName;
        var imagePath = Path.Combine(directory, "image.bin");
        File.WriteAllBytes(imagePath, image.Bytes);
        var run = VmmRunner.Run(imagePath, Path.Combine(directory, "vmm.serial"), accelerator);
        var dump = ResultDump.Parse(run.Serial, image);
        if (BatchRun.RanToCompletion(run, dump))
        {
            Directory.Delete(directory, recursive: true);
            return null;
        }

        var stderr = run.StderrTail.Length > 0 ? $"{Environment.NewLine}  stderr: {run.StderrTail.Replace("\n", "\n          ")}" : "";
        return $"{run.Machine} cannot run the test harness itself: an image of two NOP cases ended with {run.Status}"
            + $" (expected {TestImageBuilder.CompletedExitStatus}), {dump.Problem ?? "all results arrived"}, after {run.Elapsed.TotalSeconds:F1} s."
            + " The harness needs real-mode MOV (registers, memory, segment registers), PUSH/POP, PUSHFD/POPFD, JMP (near,"
            + " indirect through memory), Jcc, CALL/RET, CLI, CLD, LIDT, XOR, TEST, CMP, ADD, SUB, DEC, XCHG, REP MOVSD,"
            + " IN/OUT and REP OUTSB to COM1, and OUT to isa-debug-exit."
            + $" Reproduce: {run.CommandLine} (image kept in {directory}){stderr}";
    }
}
