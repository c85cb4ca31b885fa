using Vmm.Migration.Stream;

namespace Vmm.Migration.Source;

/// <summary>
/// Postcopy recovery on the source (QEMU's <c>migrate</c> with <c>"resume": true</c>): after a broken connection has
/// paused the migration, connect to the URI the destination listens on again (<c>migrate-recover</c>), name the
/// paused migration, take the destination's received bitmaps as the truth (pages in flight were lost), make every page
/// it lacks dirty again, and go on: requests it re-sends are served first, then the push. A failure anywhere in it
/// pauses the migration again, ready for another resume. The guest's memory here is kept until Completed.
/// </summary>
public sealed partial class MigrationSource
{
    /// <summary>How long the destination has to send its received bitmaps after the resume.</summary>
    private static readonly TimeSpan BitmapTimeout = TimeSpan.FromSeconds(30);

    private readonly object resumeGate = new();

    /// <summary>This migration's name (PostcopyName): a resume presents it, so only this migration's destination takes it.</summary>
    private readonly Guid migrationName = Guid.NewGuid();

    /// <summary>The switchover's downtime, measured on the first connection (a recovered one has no PostcopyRunning).</summary>
    private long? switchoverDowntimeUs;

    /// <summary>What connections before the current one carried.</summary>
    private ulong earlierBytes;
    private ulong earlierPreemptPages;
    private ulong earlierSharedPages;
    private ulong earlierSparsePages;

    /// <summary>Pages precopy sent as sparse pages (read by other threads for the statistics), and the bytes they saved.</summary>
    private long precopySparsePages;
    private ulong precopySparseSavedBytes;

    /// <summary>
    /// Bytes sent in postcopy so far, over every connection: the ones before a break and the current one's main stream,
    /// preempt channel and ring. query-migrate's transferred never goes back when a recovery starts a new connection.
    /// </summary>
    private ulong TransferredSoFar() =>
        earlierBytes + (ulong)(connection?.Writer.BytesWritten ?? 0) + (ulong)(preempt?.BytesWritten ?? 0) + (pushRuns?.SharedBytes ?? 0);

    /// <summary>
    /// migrate with resume: reconnects a migration in postcopy-paused to <paramref name="newUri"/> in the background
    /// (status postcopy-recover at once). Refused in any other state.
    /// </summary>
    public void Resume(MigrationUri newUri)
    {
        lock (resumeGate)
        {
            MigrationStatus status = Stats.Status;
            if (status != MigrationStatus.PostcopyPaused)
            {
                throw new InvalidOperationException($"a migration can be resumed only in postcopy-paused; it is {status.ToQmp()}");
            }

            // The attempt that paused must be done with its connection before a new one takes the fields.
            if (!Completion.Wait(TimeSpan.FromSeconds(10)))
            {
                throw new InvalidOperationException("the paused migration is still shutting its last connection down; try again");
            }

            uri = newUri;
            Volatile.Write(ref completion, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            Update(s => s with { Status = MigrationStatus.PostcopyRecover, ErrorDescription = null });
            totalClock.Start();
        }

        StatusChanged?.Invoke(MigrationStatus.PostcopyRecover);
        new Thread(Recover) { IsBackground = true, Name = "migration recovery" }.Start();
    }

    private void Recover()
    {
        try
        {
            log.Information("postcopy: resuming the paused migration to {Uri}", uri.Text);

            // The last connection is disposed and its bytes counted (Pause): a connect that fails must not count them again.
            connection = null;
            connection = MigrationConnection.Connect(uri, TimeSpan.FromSeconds(10), parameters.Tls);
            connection.SetTimeouts(TimeSpan.Zero, parameters.WriteTimeout);

            // The reader and its request handler exist before a byte goes out: the destination answers the resume at
            // once with its bitmaps and the requests still open, and none of them may find no one to serve it.
            using var returnPath = returnPathReader = new ReturnPath(connection.Reader, connection.Abort);

            // Requests (those re-sent after the bitmaps first) are served on the main stream: the preempt channel and
            // the ring do not come back. A request served before the bitmaps are applied is only sent twice.
            returnPath.PageRequestHandler = request => ServeRequest(postcopyBlocks!, pushRequestedUpTo!, request);

            // Under the writer's lock, as every other write to the main stream after the switchover: the handler above
            // answers on this connection from the reader thread, and the destination's first requests can arrive while
            // this flush is still returning (its bytes are out, the buffer not yet marked empty). Without the lock that
            // answer's flush sent the handshake a second time, and the destination read a second stream header where
            // it expected a record ("unknown record type 0x56").
            lock (writerGate)
            {
                StreamHeader.Write(connection.OutputStream);
                RamLayout.Of(machine.Ram).Write(connection.Writer);

                var resume = connection.Writer.Begin(RecordType.PostcopyResume);
                resume.Bytes(migrationName.ToByteArray());
                resume.Commit();
                connection.Writer.Flush();
            }

            ulong left = ReceiveBitmaps(returnPath);
            if (capabilities.PostcopyPreempt)
            {
                log.Warning("postcopy: the recovered migration goes on without the preempt channel and the shared ring; answers share the main connection");
            }

            // A new connection counts its bytes from zero: the throttle starts a new average.
            throttleRate = ulong.MaxValue;
            pushRuns = new PageRunWriter(connection.Writer, null, () => returnPath.ClosedReason, sparse: capabilities.SparsePages);
            Update(s => s with { Status = MigrationStatus.PostcopyActive, RemainingBytes = left * PageSize });
            StatusChanged?.Invoke(MigrationStatus.PostcopyActive);
            log.Information("postcopy to {Uri} recovered: {Pages} pages the destination does not have are sent again", uri.Text, left);
            PushUntilComplete(returnPath, 64 * 1024);

            // As after a postcopy on the first connection: the destination reads until this side closes.
            connection.Abort();
        }
        catch (Exception e)
        {
            Pause(e);
        }
        finally
        {
            connection?.Dispose();
            ReleaseUnlessPaused();
            completion.TrySetResult();
        }
    }

    /// <summary>
    /// Collects the destination's received bitmaps until PostcopyResumeReady, checks them against the layout
    /// (<see cref="ReceivedBitmapAssembler"/>) and makes every page it lacks dirty. Returns the 4 KiB pages to send.
    /// </summary>
    private ulong ReceiveBitmaps(ReturnPath returnPath)
    {
        var assembler = new ReceivedBitmapAssembler(postcopyBlocks!);
        DateTime deadline = DateTime.UtcNow + BitmapTimeout;
        while (true)
        {
            if (!returnPath.TryTake(out ReturnMessage message))
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new MigrationFailedException($"the destination did not send its received bitmaps within {BitmapTimeout.TotalSeconds:F0} s");
                }

                returnPath.Arrived.Wait(TimeSpan.FromMilliseconds(100));
                continue;
            }

            switch (message.Type)
            {
                case RecordType.PostcopyReceivedBitmap:
                    assembler.Add(message.Block, message.Offset, (uint)message.Length, message.Bits!);
                    break;
                case RecordType.PostcopyResumeReady:
                    assembler.Finish(message.Block);
                    return assembler.ApplyToDirty();
                default:
                    ReturnPath.Fail(message);
                    break;
            }
        }
    }
}
