using Vmm.Tests.Infrastructure;

namespace Vmm.Tests;

/// <summary>
/// Boot sectors written the way tutorials write them — int 10h, 13h, 15h, 16h, 1Ah — assembled by NASM and run
/// unmodified under the built-in BIOS (--bios vmm), on the accelerator of the test pass.
/// </summary>
public class BiosBootSectorTests
{
    [Fact]
    public void HelloThroughInt10hTeletypeAndWriteStringAndAnUnknownCallReturnsCarry()
    {
        VmmResult result = RunFixture("bios-hello", []);

        Assert.Equal("Hello from the BIOS!\r\nwrite string\r\nunknown: CF\r\n", result.Stdout);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(string.Empty, result.Stderr);
    }

    [Fact]
    public void TheBiosRunsByDefaultAndBiosNoneLeavesTheVectorTableEmpty()
    {
        string image = NasmBootSectorTests.Assemble("bios-hello");
        try
        {
            VmmResult byDefault = VmmProcess.Run(["run", image], TimeSpan.FromSeconds(60));
            Assert.Equal("Hello from the BIOS!\r\nwrite string\r\nunknown: CF\r\n", byDefault.Stdout);
            Assert.Equal(0, byDefault.ExitCode);

            // The bare machine: int 10h jumps through an empty vector to 0000:0000 and the guest goes astray there
            // (KVM reports a crash, the software CPU runs the zeros), printing nothing.
            using VmmProcess bare = VmmProcess.Start(["run", image, "--bios", "none"], environment: null);
            Thread.Sleep(TimeSpan.FromSeconds(3));
            Assert.Equal(string.Empty, bare.Stdout);
        }
        finally
        {
            File.Delete(image);
        }
    }

    [Fact]
    public void TheGuestCannotOverwriteTheBiosRomAndItsServicesKeepWorking()
    {
        // Byte, word, REP STOSB, REP MOVSB and dword stores over the int 10h handler and F000:FFF0 are all dropped
        // (KVM: a read-only memslot; the software CPU: pages without a writable mapping).
        VmmResult result = RunFixture("bios-rom", []);

        Assert.Equal("rom test\r\nrom unchanged\r\nbios ok\r\n", result.Stdout);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(string.Empty, result.Stderr);
    }

    [Fact]
    public void TheRomAreaIsReadOnlyUnderTheBiosAndOrdinaryRamOnTheBareMachine()
    {
        Assert.Equal("read-only\r\n", RunFixture("rom-area", []).Stdout);
        Assert.Equal("writable\r\n", RunFixture("rom-area", [], bios: false).Stdout);
    }

    [Fact]
    public void VideoCursorScrollAndModeCallsAnswerLikeABios()
    {
        VmmResult result = RunFixture("bios-video", []);

        Assert.Equal("video ok\r\n", result.Stdout);
        Assert.Equal(0, result.ExitCode);
    }

    [Fact]
    public void Int19hRebootsIntoTheBootSectorAgain()
    {
        VmmResult result = RunFixture("bios-reboot", ["--memory", "32M"]);

        Assert.Equal("boot 1\r\nboot 2\r\nboot 3\r\ndone\r\n", result.Stdout);
        Assert.Equal(0, result.ExitCode);
    }

    [Fact]
    public void TwoStageLoaderReadsItsSectorsThroughInt13hAndAReadPastTheEndFails()
    {
        string image = NasmBootSectorTests.Assemble("bios-loader");
        try
        {
            byte[] before = File.ReadAllBytes(image);
            VmmResult result = VmmProcess.Run(["run", image, "--bios", "vmm"], TimeSpan.FromSeconds(60));

            Assert.Equal("stage 1\r\nstage 2\r\nlba ok\r\nparams ok\r\nbeyond: CF 04\r\nwrite ok\r\n", result.Stdout);
            Assert.Equal((0x10 << 1) | 1, result.ExitCode);

            // The guest wrote sector 4, but to a private copy: the image is untouched.
            Assert.Equal(before, File.ReadAllBytes(image));
        }
        finally
        {
            File.Delete(image);
        }
    }

    [Fact]
    public void DiskWritableSendsInt13hWritesToTheImage()
    {
        string image = NasmBootSectorTests.Assemble("bios-loader");
        try
        {
            VmmResult result = VmmProcess.Run(["run", image, "--bios", "vmm", "--disk-writable"], TimeSpan.FromSeconds(60));

            Assert.Equal((0x10 << 1) | 1, result.ExitCode);
            byte[] after = File.ReadAllBytes(image);
            Assert.All(after[1536..2048], b => Assert.Equal(0x5A, b));
        }
        finally
        {
            File.Delete(image);
        }
    }

    [Fact]
    public void EchoReadsKeysFromStdinThroughInt16h()
    {
        string image = NasmBootSectorTests.Assemble("bios-echo");
        try
        {
            VmmResult result = VmmProcess.Run(["run", image, "--bios", "vmm"], TimeSpan.FromSeconds(60), stdin: "hi there\nok\u0004");

            // Enter (LF from a terminal) arrives as CR, as from a PC keyboard; the guest echoes it as CR LF.
            Assert.Equal("keys?\r\nhi there\r\nok\r\nbye\r\n", result.Stdout);
            Assert.Equal(0, result.ExitCode);
        }
        finally
        {
            File.Delete(image);
        }
    }

    [Fact]
    public void MemoryMapThroughInt12hInt15h88hAndE820()
    {
        VmmResult result = RunFixture("bios-e820", ["--memory", "32M"]);

        Assert.Equal(
            "027F 7C00\r\n" +
            "0000000000000000 000000000009FC00 1\r\n" +
            "000000000009FC00 0000000000000400 2\r\n" +
            "00000000000F0000 0000000000010000 2\r\n" +
            "0000000000100000 0000000001F00000 1\r\n" +
            "end\r\n",
            result.Stdout);
        Assert.Equal(0, result.ExitCode);
    }

    [Fact]
    public void TimerGuestSleepsInHltAndCountsTicksThroughInt1ChAndInt1Ah()
    {
        VmmResult result = RunFixture("bios-timer", []);

        Assert.Equal("timer\r\nticks ok\r\n", result.Stdout);
        Assert.Equal((0x10 << 1) | 1, result.ExitCode);
    }

    [Fact]
    public void BareMachineHasNoBiosButAProgrammablePicAndPit()
    {
        // --bios none: the guest programs the PIC and the PIT itself and installs its own handler.
        VmmResult result = RunFixture("pic-timer", [], bios: false);

        Assert.Equal("pic ok\r\n", result.Stdout);
        Assert.Equal((0x10 << 1) | 1, result.ExitCode);
    }

    [Fact]
    public void Com1InterruptsReachTheGuestThroughIrq4()
    {
        string image = NasmBootSectorTests.Assemble("uart-irq");
        try
        {
            using VmmProcess vmm = VmmProcess.Start(["run", image, "--bios", "none"], environment: null);
            vmm.WaitForStdout(s => s.Contains("irq echo\r\n"), TimeSpan.FromSeconds(30));
            vmm.WriteInput("abc");
            vmm.WaitForStdout(s => s.EndsWith("abc", StringComparison.Ordinal), TimeSpan.FromSeconds(30));

            // The echo shows before the handler has left its drain loop (it checks LSR once more, then EOI, IRET): a
            // byte sent at once can still be drained by the same interrupt (seen once in CI, on KVM: "irqs 1"). The
            // handler needs microseconds; the pause covers a vCPU thread descheduled on a busy host.
            Thread.Sleep(200);
            vmm.WriteInput("de");
            vmm.WaitForStdout(s => s.EndsWith("abcde", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            Thread.Sleep(200);
            vmm.WriteInput("\u0004");
            VmmResult result = vmm.WaitForExit(TimeSpan.FromSeconds(30));

            // More than one interrupt: the handler drains RBR, the line drops, a later byte raises it again (bursts that
            // arrive while the handler drains may share one).
            Assert.Matches(@"^irq echo\r\nabcde\r\nirqs [2-9]\r\n$", result.Stdout);
            Assert.Equal(0, result.ExitCode);
        }
        finally
        {
            File.Delete(image);
        }
    }

    [Fact]
    public void AnUnknownFirmwareIsAnOptionError()
    {
        VmmResult result = VmmProcess.Run("run", Repo.Guest("hello"), "--bios", "seabios");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("bios: 'seabios' is not one of none, vmm", result.Stderr);
    }

    private static VmmResult RunFixture(string name, string[] extra, bool bios = true)
    {
        string image = NasmBootSectorTests.Assemble(name);
        try
        {
            string[] arguments = ["run", image, "--bios", bios ? "vmm" : "none", .. extra];
            return VmmProcess.Run(arguments, TimeSpan.FromSeconds(60));
        }
        finally
        {
            File.Delete(image);
        }
    }
}
