using Vmm.Tests.Infrastructure;
using Vmm.Tests.Qmp;

namespace Vmm.Tests;

/// <summary>
/// The VGA text buffer the BIOS's int 10h keeps beside COM1, as the monitor shows it (`info screen`): the echo guest
/// types what stdin sends, and more lines than the screen holds make it scroll.
/// </summary>
public sealed class BiosScreenTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vmm-scr-").FullName;

    [Fact]
    public void InfoScreenShowsTheTextTheGuestWroteThroughInt10hAfterScrolling()
    {
        string image = NasmBootSectorTests.Assemble("bios-echo");
        string socket = Path.Combine(dir, "qmp.sock");
        try
        {
            using VmmProcess vmm = VmmProcess.Start(["run", image, "--bios", "vmm", "--monitor", $"unix:{socket}"], environment: null);
            vmm.WaitForStdout(s => s.Contains("keys?"), TimeSpan.FromSeconds(30));
            string[] typed = [.. Enumerable.Range(1, 30).Select(i => $"line {i:00}")];
            vmm.WriteInput(string.Join("\n", typed) + "\n");
            vmm.WaitForStdout(s => s.Contains("line 30\r\n"), TimeSpan.FromSeconds(30));

            using QmpTestClient client = QmpTestClient.Connect(socket);
            string screen = client.Return("human-monitor-command", new Dictionary<string, object> { ["command-line"] = "info screen" }).GetString()!;

            // "keys?" and 30 lines, then the cursor on an empty line: the top 7 lines scrolled away.
            string[] rows = screen.Split("\r\n")[..25];
            Assert.Equal([.. typed[6..], ""], rows);
            vmm.WriteInput("\u0004");
            Assert.Equal(0, vmm.WaitForExit(TimeSpan.FromSeconds(30)).ExitCode);
        }
        finally
        {
            File.Delete(image);
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
