using System.Net.Sockets;
using Vmm.Migration;
using Vmm.Migration.Source;

namespace Vmm.Fuzz;

/// <summary>
/// Seeds from real migrations, not only from the writers: a real <see cref="MigrationSource"/> (through a
/// <see cref="MigrationController"/>) moves a <see cref="FakeMachine"/> to a real destination, through a relay that
/// keeps every byte each way. The main stream (header and all) is a seed of the destination's receive path, the
/// return path one of the source's. Preempt channel off on both ends, as in <see cref="DestinationTarget"/>: one
/// connection carries the whole protocol.
/// </summary>
internal static class RecordedMigration
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    /// <summary>The bytes source → destination and destination → source of one migration, postcopy or not.</summary>
    public static (byte[] MainStream, byte[] ReturnPath) Record(bool postcopy)
    {
        string dir = Directory.CreateTempSubdirectory("vmm-fuzz-seed-").FullName;
        try
        {
            using var source = new FakeMachine { PagesDirtiedPerSync = 8 };
            using var destination = new FakeMachine();
            Fill(source);
            var capabilities = new MigrationCapabilities { PostcopyRam = postcopy, PostcopyPreempt = false };
            var outgoing = new MigrationController(source, Serilog.Core.Logger.None);
            var incoming = new MigrationController(destination, Serilog.Core.Logger.None);
            outgoing.SetCapabilities(capabilities);
            incoming.SetCapabilities(capabilities);

            // Precopy would never converge with pages dirtied every pass: 3 passes, then the switchover.
            outgoing.SetParameters(new MigrationParameters { MaxPasses = 3 });

            string destinationPath = Path.Combine(dir, "destination.sock");
            string relayPath = Path.Combine(dir, "relay.sock");
            using Socket listener = Vmm.Migration.Destination.IncomingMigration.Listen(MigrationUri.Parse($"unix:{destinationPath}"));
            using var relayListener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            relayListener.Bind(new UnixDomainSocketEndPoint(relayPath));
            relayListener.Listen(1);

            Task receiving = Task.Factory.StartNew(() => incoming.RunIncoming(listener), TaskCreationOptions.LongRunning);
            Task<(byte[], byte[])> relay = Task.Factory.StartNew(() => Relay(relayListener, destinationPath), TaskCreationOptions.LongRunning);
            MigrationSource migration = outgoing.Migrate($"unix:{relayPath}");
            if (postcopy)
            {
                outgoing.StartPostcopy();
            }

            if (!migration.Completion.Wait(Deadline) || migration.Stats.Status != MigrationStatus.Completed)
            {
                throw new InvalidOperationException($"the recorded migration did not complete: {migration.Stats.Status} {migration.Stats.ErrorDescription}");
            }

            if (!receiving.Wait(Deadline) || !relay.Wait(Deadline))
            {
                throw new InvalidOperationException("the recorded migration's destination or relay did not finish");
            }

            return relay.Result;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Data in some pages of each block (the rest stays zero, sent as zero runs), so pages carry data too.</summary>
    private static void Fill(FakeMachine machine)
    {
        var random = new Random(18);
        foreach (string name in new[] { "pc.ram", "extra" })
        {
            Vmm.Ram.RamBlock block = machine.Ram.FindByName(name)!;
            for (ulong page = 0; page < 8; page++)
            {
                random.NextBytes(block.GetSpan(page * 2 * 4096, 4096));
            }
        }
    }

    /// <summary>Accepts the source, connects to the destination, and copies both ways until both ends close.</summary>
    private static (byte[] MainStream, byte[] ReturnPath) Relay(Socket listener, string destinationPath)
    {
        using Socket fromSource = listener.Accept();
        using var toDestination = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        toDestination.Connect(new UnixDomainSocketEndPoint(destinationPath));
        Task<byte[]> main = Task.Factory.StartNew(() => Pump(fromSource, toDestination), TaskCreationOptions.LongRunning);
        byte[] returnPath = Pump(toDestination, fromSource);
        return (main.Result, returnPath);
    }

    private static byte[] Pump(Socket from, Socket to)
    {
        using var kept = new MemoryStream();
        byte[] buffer = new byte[64 << 10];
        try
        {
            int read;
            while ((read = from.Receive(buffer)) > 0)
            {
                kept.Write(buffer, 0, read);
                to.Send(buffer.AsSpan(0, read));
            }

            to.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            // One end closed hard: what came until then is the recording.
        }

        return kept.ToArray();
    }
}
