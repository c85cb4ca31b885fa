using Vmm.CpuSemantics.Tests.Harness;

namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>One image run on QEMU and on vmm at the same time, with both result streams parsed.</summary>
/// <param name="Qemu">How QEMU ran (the expectation).</param>
/// <param name="Vmm">How vmm ran.</param>
/// <param name="QemuDump">QEMU's results.</param>
/// <param name="VmmDump">vmm's results.</param>
/// <param name="Directory">Where the image and both serial dumps are (kept when a test fails, for reproduction).</param>
public sealed record BatchRun(GuestRun Qemu, GuestRun Vmm, ResultDump QemuDump, ResultDump VmmDump, string Directory)
{
    /// <summary>
    /// Runs <paramref name="qemuImage"/> on QEMU and <paramref name="vmmImage"/> on vmm in parallel (normally the same
    /// image; the harness's own tests give vmm a different one to prove that a difference is reported).
    /// </summary>
    public static BatchRun Execute(TestImage qemuImage, TestImage vmmImage, string accelerator)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("vmm-cpusem-").FullName;
        var qemuImagePath = Path.Combine(directory, "image.bin");
        var vmmImagePath = qemuImagePath;
        File.WriteAllBytes(qemuImagePath, qemuImage.Bytes);
        if (!ReferenceEquals(qemuImage, vmmImage))
        {
            vmmImagePath = Path.Combine(directory, "vmm-image.bin");
            File.WriteAllBytes(vmmImagePath, vmmImage.Bytes);
        }

        // Locate QEMU and vmm before starting either, so a missing one fails with its own message.
        QemuRunner.Locate();
        _ = RepositoryPaths.VmmDll;
        var qemuTask = Task.Run(() => QemuRunner.Run(qemuImagePath, Path.Combine(directory, "qemu.serial")));
        var vmmTask = Task.Run(() => VmmRunner.Run(vmmImagePath, Path.Combine(directory, "vmm.serial"), accelerator));
        var qemu = qemuTask.GetAwaiter().GetResult();
        var vmm = vmmTask.GetAwaiter().GetResult();
        return new BatchRun(qemu, vmm, ResultDump.Parse(qemu.Serial, qemuImage), ResultDump.Parse(vmm.Serial, vmmImage), directory);
    }

    /// <summary>Whether <paramref name="run"/> ended as the harness ends: every result sent, then isa-debug-exit with the completion value.</summary>
    public static bool RanToCompletion(GuestRun run, ResultDump dump) =>
        dump.Complete && run.ExitCode == TestImageBuilder.CompletedExitStatus;
}
