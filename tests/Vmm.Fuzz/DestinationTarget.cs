using System.Net.Sockets;
using Serilog;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Stream;

namespace Vmm.Fuzz;

/// <summary>
/// The destination's receive path, fed one input as the bytes a source sends: a real <see cref="IncomingMigration"/>
/// on a real Unix socket against a <see cref="FakeMachine"/>, postcopy allowed (userfaultfd and all), no preempt
/// channel (its 10–60 s waits for a second connection would read as hangs). The only acceptable outcomes are a
/// migration failure (<see cref="MigrationFailedException"/>, <see cref="MigrationStreamException"/>) or a normal end;
/// any other exception escapes and is a crash.
/// </summary>
internal static class DestinationTarget
{
    private const int MaxInput = 4 << 20;

    private static readonly MigrationTimeouts Timeouts = new()
    {
        Header = TimeSpan.FromMilliseconds(500),
        Read = TimeSpan.FromSeconds(1),
        Write = TimeSpan.FromSeconds(1),
    };

    /// <summary>How the last input ended, for replay's report.</summary>
    public static string Outcome { get; private set; } = string.Empty;

    public static void Run(System.IO.Stream input)
    {
        byte[] bytes = ReadAll(input);
        using var machine = new FakeMachine();
        string path = Path.Combine(Path.GetTempPath(), $"vmm-fuzz-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        Socket listener = IncomingMigration.Listen(MigrationUri.Parse($"unix:{path}"));
        var incoming = new IncomingMigration(machine, Serilog.Core.Logger.None, () => true, () => true, () => false, () => false, Timeouts);
        var source = new Thread(() => Send(path, bytes, listener)) { IsBackground = true };
        source.Start();
        try
        {
            incoming.Run(listener);
            Outcome = $"ended: {incoming.Stats.Status}";
        }
        catch (Exception e) when (e is MigrationFailedException or MigrationStreamException)
        {
            // A refusal: what a bad stream must end in.
            Outcome = $"refused: {e.Message}";
        }
        finally
        {
            incoming.Abort();
            source.Join();
            listener.Dispose();
            File.Delete(path);
        }
    }

    /// <summary>
    /// The fake source: writes the input, reads the return path until the destination closes, then closes the listener
    /// (a destination that dropped the connection would otherwise wait for the next one forever).
    /// </summary>
    private static void Send(string path, byte[] bytes, Socket listener)
    {
        using (var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 5000, SendTimeout = 5000 })
        {
            try
            {
                socket.Connect(new UnixDomainSocketEndPoint(path));
                var drain = new Thread(() => Drain(socket)) { IsBackground = true };
                drain.Start();
                socket.Send(bytes);
                socket.Shutdown(SocketShutdown.Send);
                drain.Join();
            }
            catch (SocketException)
            {
                // The destination gave up on us first.
            }
        }

        listener.Dispose();
    }

    private static void Drain(Socket socket)
    {
        byte[] buffer = new byte[64 << 10];
        try
        {
            while (socket.Receive(buffer) > 0)
            {
            }
        }
        catch (SocketException)
        {
            // Closed or timed out: done either way.
        }
    }

    private static byte[] ReadAll(System.IO.Stream input)
    {
        using var copy = new MemoryStream();
        byte[] buffer = new byte[64 << 10];
        int read;
        while (copy.Length < MaxInput && (read = input.Read(buffer)) > 0)
        {
            copy.Write(buffer, 0, read);
        }

        return copy.ToArray();
    }
}
