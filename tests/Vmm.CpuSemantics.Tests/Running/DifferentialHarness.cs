using System.Diagnostics;
using System.Text;
using Vmm.CpuSemantics.Tests.Harness;

namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>
/// Runs cases on QEMU TCG and on vmm and compares every result. The entry point of every family test:
/// <see cref="AssertSameAsQemu(IEnumerable{TestCase})"/>.
/// </summary>
public static class DifferentialHarness
{
    /// <summary>Fails the test with a full report unless vmm (with <see cref="Accelerator.ForTests"/>) matches QEMU on every case.</summary>
    public static void AssertSameAsQemu(IEnumerable<TestCase> cases) => AssertSameAsQemu(cases, Accelerator.ForTests);

    public static void AssertSameAsQemu(IEnumerable<TestCase> cases, string accelerator)
    {
        var verdict = Compare(cases.ToList(), accelerator);
        if (!verdict.Passed)
        {
            Assert.Fail(verdict.Report);
        }
    }

    /// <summary>
    /// Splits the cases into images, runs each image on both machines (QEMU and vmm in parallel) and compares.
    /// <paramref name="alterForVmm"/>, when given, changes what vmm runs (never what QEMU runs or what the report
    /// shows): the harness's own tests use it to plant a known difference.
    /// </summary>
    public static DifferentialVerdict Compare(IReadOnlyList<TestCase> cases, string accelerator, Func<TestCase, TestCase>? alterForVmm = null)
    {
        // The witness and vmm's build first, each with its own message; then whether vmm can run the harness at all.
        QemuRunner.Locate();
        _ = RepositoryPaths.VmmDll;
        if (HarnessProbe.ProblemWith(accelerator) is { } broken)
        {
            var none = cases.Select(_ => (CaseOutcome?)null).ToList();
            return new DifferentialVerdict(cases, none, none, [], [broken], broken);
        }

        var batches = CaseBatches.Split(cases);
        var qemuOutcomes = new List<CaseOutcome?>();
        var vmmOutcomes = new List<CaseOutcome?>();
        var mismatches = new List<CaseMismatch>();
        var problems = new List<string>();
        var keptDirectories = new List<string>();
        var vmmMachine = $"vmm (VMM_ACCEL={accelerator})";
        var clock = Stopwatch.StartNew();
        for (var b = 0; b < batches.Count; b++)
        {
            var image = TestImageBuilder.Build(batches[b]);
            var vmmImage = alterForVmm is null ? image : TestImageBuilder.Build(batches[b].Select(alterForVmm).ToList());
            var run = BatchRun.Execute(image, vmmImage, accelerator);
            vmmMachine = run.Vmm.Machine;
            var imageName = batches.Count == 1 ? "image" : $"image {b + 1}/{batches.Count}";
            var batchProblems = new List<string>();
            if (!BatchRun.RanToCompletion(run.Qemu, run.QemuDump))
            {
                batchProblems.Add(DescribeIncompleteRun(imageName, run.Qemu, run.QemuDump, image, "the harness or the QEMU setup is broken: nothing can be compared without the witness"));
            }

            if (!BatchRun.RanToCompletion(run.Vmm, run.VmmDump))
            {
                batchProblems.Add(DescribeIncompleteRun(imageName, run.Vmm, run.VmmDump, image, null));
            }

            var batchMismatches = 0;
            for (var i = 0; i < image.Cases.Count; i++)
            {
                var qemu = i < run.QemuDump.Outcomes.Count ? run.QemuDump.Outcomes[i] : null;
                var vmm = i < run.VmmDump.Outcomes.Count ? run.VmmDump.Outcomes[i] : null;
                qemuOutcomes.Add(qemu);
                vmmOutcomes.Add(vmm);
                if (qemu is null || vmm is null)
                {
                    continue;
                }

                var fields = CaseComparison.Differences(qemu, vmm);
                if (fields.Count > 0)
                {
                    mismatches.Add(new CaseMismatch($"{imageName}, case {i}", image.Cases[i], qemu, vmm, fields));
                    batchMismatches++;
                }
            }

            problems.AddRange(batchProblems);
            if (batchProblems.Count > 0 || batchMismatches > 0)
            {
                keptDirectories.Add($"{imageName}: {run.Directory} (image.bin, qemu.serial, vmm.serial); QEMU: {run.Qemu.CommandLine}; vmm: {run.Vmm.CommandLine}");
            }
            else
            {
                Directory.Delete(run.Directory, recursive: true);
            }

            // No result header at all: the harness itself does not run there, and the next images would only repeat
            // that (each after the stall timeout).
            if (run.VmmDump.Outcomes.Count == 0 && !run.VmmDump.Complete && b + 1 < batches.Count)
            {
                problems.Add($"The other {batches.Count - b - 1} image(s) were not run: {vmmMachine} did not get through the first case of {imageName}.");
                break;
            }
        }

        // Cases of images that were not run have no result on either side.
        while (qemuOutcomes.Count < cases.Count)
        {
            qemuOutcomes.Add(null);
            vmmOutcomes.Add(null);
        }

        var report = new StringBuilder();
        if (problems.Count > 0 || mismatches.Count > 0)
        {
            report.AppendLine($"{cases.Count} cases in {batches.Count} image(s), {clock.Elapsed.TotalSeconds:F1} s.");
            foreach (var problem in problems)
            {
                report.AppendLine(problem);
            }

            if (mismatches.Count > 0)
            {
                report.Append(MismatchReport.Format(mismatches, qemuOutcomes.Count(o => o is not null), vmmMachine));
            }

            report.AppendLine();
            report.AppendLine("Kept for reproduction:");
            foreach (var kept in keptDirectories)
            {
                report.AppendLine("  " + kept);
            }
        }

        return new DifferentialVerdict(cases, qemuOutcomes, vmmOutcomes, mismatches, problems, report.ToString());
    }

    private static string DescribeIncompleteRun(string imageName, GuestRun run, ResultDump dump, TestImage image, string? consequence)
    {
        var text = new StringBuilder();
        text.Append($"{run.Machine} did not run {imageName} to the end: {run.Status} (expected {TestImageBuilder.CompletedExitStatus}), ");
        text.Append(dump.Problem ?? "all results arrived");
        text.Append($", after {run.Elapsed.TotalSeconds:F1} s.");
        var next = dump.Outcomes.Count;
        if (next < image.Cases.Count)
        {
            var stuck = image.Cases[next];
            text.Append($" Results arrived for {next} of {image.Cases.Count} cases; the next one is case {next}: {stuck.Form}: {Code16.Hex(stuck.Code)}  {Code16.Disassemble(stuck.Code)}.");
        }

        if (run.ExitCode == TestImageBuilder.LoadFailedExitStatus)
        {
            text.Append(" (That status means the boot sector could not load the image through int 13h.)");
        }

        if (consequence is not null)
        {
            text.Append(' ').Append(consequence).Append('.');
        }

        if (run.StderrTail.Length > 0)
        {
            text.AppendLine().Append("  stderr: ").Append(run.StderrTail.Replace("\n", "\n          "));
        }

        return text.ToString();
    }
}
