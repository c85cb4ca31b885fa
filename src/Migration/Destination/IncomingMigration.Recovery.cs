using System.Net.Sockets;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;

namespace Vmm.Migration.Destination;

/// <summary>
/// Postcopy recovery on the destination (QEMU's <c>migrate-recover</c>): a paused postcopy listens again; the first
/// connection that proves to be the source of this very migration (the same layout, and the name the source gave it
/// in PostcopyName) gets the received bitmaps, the requests still unanswered, and then pushes the rest. Nothing of a
/// peer that is not that source is placed. A failure anywhere returns to postcopy-paused, ready to recover again; the
/// guest keeps running here throughout, its vCPUs waiting on whatever is missing.
/// </summary>
public sealed partial class IncomingMigration
{
    private readonly object recoverGate = new();

    /// <summary>Set when the first connection's receive is over (its teardown too): a recovery waits for it.</summary>
    private readonly ManualResetEventSlim firstRunDone = new(false);

    /// <summary>The layout accepted from the source at Setup: a resuming source must present it again.</summary>
    private RamLayout? acceptedLayout;

    /// <summary>This migration's name, from the source's PostcopyName: a resuming source must present it.</summary>
    private Guid? migrationName;

    /// <summary>The listener of a recovery waiting for its source: <see cref="Interrupt"/> closes it.</summary>
    private volatile Socket? recoveryListener;

    /// <summary>The return path of the connection of the moment (the first one, or the last recovered one).</summary>
    private volatile ReturnPathWriter? liveReturnPath;

    /// <summary>
    /// migrate-recover: listen on <paramref name="uri"/> for the source to resume; status postcopy-recover until it has
    /// (then postcopy-active) or the attempt fails (postcopy-paused again). Only in postcopy-paused.
    /// </summary>
    public void Recover(MigrationUri uri)
    {
        lock (recoverGate)
        {
            MigrationStatus now = Stats.Status;
            if (now != MigrationStatus.PostcopyPaused || postcopy is null || migrationName is null)
            {
                throw new InvalidOperationException($"migrate-recover is only possible in postcopy-paused; the incoming migration is {now.ToQmp()}");
            }

            if (!firstRunDone.Wait(TimeSpan.FromSeconds(10)))
            {
                throw new InvalidOperationException("the broken connection is still being shut down; try again");
            }

            Socket listener = recoveryListener = Listen(uri);
            SetStatus(MigrationStatus.PostcopyRecover, null);
            log.Information("postcopy: waiting on {Uri} for the source to resume", uri.Text);
            new Thread(() => ReceiveRecovered(listener)) { IsBackground = true, Name = "incoming recovery" }.Start();
        }
    }

    /// <summary>One recovery attempt, on its own thread: accept, check, hand over the bitmaps, receive to the end.</summary>
    private void ReceiveRecovered(Socket listener)
    {
        PostcopyDestination destination = postcopy!;
        MigrationConnection? connection = null;
        ReturnPathWriter? returnPath = null;
        try
        {
            using (listener)
            {
                connection = AcceptSource(listener);
            }

            recoveryListener = null;

            returnPath = new ReturnPathWriter(connection.Writer);
            CheckResumingSource(connection);

            // From here the peer is this migration's source. The bitmaps go first, then the requests still open.
            connection.SetTimeouts(timeouts.Read, timeouts.Write);
            returnPath.SendReceivedBitmaps(destination.ReceivedBitmaps());
            liveReturnPath = returnPath;
            returnPath.StartSender();
            phase = IncomingPhase.Running;

            // Active before the requests go out: if everything had arrived already, Resume completes at once.
            SetStatus(MigrationStatus.PostcopyActive, null);
            long asked = destination.Resume(returnPath);
            log.Information("postcopy: the source resumed; {Missing} host pages to come, {Asked} requests sent again", destination.RemainingPages, asked);
            ReceivePushed(connection, destination);
        }
        catch (Exception e) when (destination.IsComplete)
        {
            log.Warning("incoming migration: after completion: {Message}", Describe(e));
        }
        catch (Exception e)
        {
            string why = interrupted ? "the destination was stopped while it waited for the source to resume" : $"the postcopy recovery failed: {Describe(e)}";
            destination.Pause();
            SetStatus(MigrationStatus.PostcopyPaused, why);
            if (returnPath is not null)
            {
                TrySendError(returnPath, why);
            }

            log.Error("postcopy paused again: {Message}; the guest keeps running here", why);
        }
        finally
        {
            current = null;
            returnPath?.Dispose();
            connection?.Dispose();
            if (destination.IsComplete)
            {
                destination.Dispose();
            }
        }
    }

    /// <summary>
    /// Before anything is placed: the header, the same layout as at Setup, and PostcopyResume naming this migration.
    /// Anything else (another run's source, a fresh migration, a layout that changed) is refused.
    /// </summary>
    private void CheckResumingSource(MigrationConnection connection)
    {
        StreamHeader.Read(connection.InputStream);
        Record setup = connection.Reader.Read();
        if (setup.Type != RecordType.Setup)
        {
            throw new MigrationStreamException($"protocol error: a resuming source starts with {setup.Type}, not Setup");
        }

        RamLayout layout = RamLayout.Read(setup);
        if (!layout.Blocks.SequenceEqual(acceptedLayout!.Blocks))
        {
            IReadOnlyList<string> problems = layout.Mismatches(acceptedLayout);
            throw new MigrationFailedException(
                $"refused a resuming source whose RAM layout is not the paused migration's{(problems.Count > 0 ? ": " + string.Join("; ", problems) : string.Empty)}");
        }

        Record resume = connection.Reader.Read();
        if (resume.Type != RecordType.PostcopyResume)
        {
            throw new MigrationStreamException($"protocol error: {resume.Type} where a resuming source sends PostcopyResume");
        }

        PayloadReader payload = resume.Reader();
        var name = new Guid(payload.Bytes(16));
        payload.End();
        if (name != migrationName)
        {
            throw new MigrationFailedException("refused a source that is not the other end of this paused migration (it names another migration)");
        }
    }

    /// <summary>After a recovery the stream carries only postcopy pages (through the socket) and PostcopyPushDone.</summary>
    private void ReceivePushed(MigrationConnection connection, PostcopyDestination destination)
    {
        while (true)
        {
            Record record;
            try
            {
                record = connection.Reader.Read();
            }
            catch (MigrationStreamException) when (destination.IsComplete)
            {
                // The source closes once it has our Complete.
                return;
            }

            lock (statsGate)
            {
                bytesReceived += (ulong)record.Payload.Length;
            }

            if (!phase.Accepts(record.Type))
            {
                throw new MigrationStreamException(phase.Refusal(record.Type));
            }

            switch (record.Type)
            {
                case RecordType.Page:
                    PageRecord.Parsed arrived = PageRecord.Read(record);
                    PageRecord.Parsed page = arrived.Sparse ? arrived.Expanded(recoverySparseBuffer ??= new SparseExpansionBuffer()) : arrived;
                    if (page.Shared is not null)
                    {
                        throw new MigrationStreamException("protocol error: a shared-ring Page record after a recovery (the ring does not come back)");
                    }

                    destination.Place(page.BlockIndex, page.Offset, page.Length, page.Zero, page.Data);
                    recoverySparseBuffer?.Reset();
                    CountPage(page.Length, page.Zero, sparse: arrived.Sparse);
                    break;

                case RecordType.PostcopyPushDone:
                    record.Reader().End();
                    phase = phase.After(record.Type);
                    destination.PushDone();
                    break;

                default:
                    throw new MigrationStreamException($"protocol error: unexpected {record.Type} record from the source");
            }
        }
    }
}
