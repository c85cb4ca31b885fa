using CsCheck;
using Vmm.Machine;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// Property test (CsCheck) of the destination's state machine as it runs, not only its table: random sequences of
/// well-formed records from a fake source into a real <see cref="IncomingMigration"/> of a real machine. A small model
/// — the phase table (<see cref="IncomingPhases"/>, itself checked against the protocol in
/// <see cref="StreamPropertyTests"/>) plus the three rules that depend on content (each state section once, the
/// migration's name once, every section before End or PostcopyRun) and one of postcopy (with nothing discarded,
/// every page is here at PostcopyRun, which completes the migration) — predicts the one outcome of each sequence: the
/// first refusal fails the migration with no guest (before PostcopyRun) or pauses it keeping the guest (after), with
/// the model's message; an accepted End, or a PostcopyRun with nothing discarded, completes it with the guest
/// running. Every sequence ends with a Setup record, which no phase accepts, so every run has an outcome to check and
/// nothing is left waiting. (Without the destination's duplicate-section check, this fails and shrinks to "State,
/// State".)
/// </summary>
public sealed class DestinationPropertyTests : IDisposable
{
    /// <summary>What a source can put on the main stream, legal somewhere or nowhere (Setup again, PostcopyResume, a return-path record).</summary>
    private static readonly RecordType[] Candidates =
    [
        RecordType.Page, RecordType.PassEnd, RecordType.State, RecordType.End, RecordType.PostcopyAdvise, RecordType.PostcopyName,
        RecordType.PostcopyDiscard, RecordType.PostcopyDiscardSync, RecordType.PostcopyListen, RecordType.PostcopyRun,
        RecordType.PostcopyPushDone, RecordType.Setup, RecordType.PostcopyResume, RecordType.PageRequest,
    ];

    /// <summary>The spin guest's state and low memory, made once (it boots a machine).</summary>
    private static readonly Lazy<(IReadOnlyList<StateSection> Sections, byte[] LowMemory)> Origin = new(FakeSource.Origin);

    /// <summary>The data of every Page step.</summary>
    private static readonly byte[] Filled = [.. Enumerable.Repeat((byte)0x5A, 4096)];

    private readonly string dir = Directory.CreateTempSubdirectory("vmm-dst-prop-").FullName;

    private enum Outcome
    {
        /// <summary>Status failed, an Error record, no guest ran (exit status 8 in `run --incoming`).</summary>
        Failed,

        /// <summary>Status postcopy-paused, an Error record, the guest keeps running here.</summary>
        Paused,

        /// <summary>End (or PostcopyRun with every page here) accepted: status completed, the guest runs here.</summary>
        Completed,
    }

    /// <summary>
    /// Each step is (pick, choice): pick &lt; 18 (nine in ten) takes the choice-th record type the model's phase
    /// accepts, End and PostcopyRun only once the state is sent — so sequences get deep into postcopy and past the
    /// switchover — else the choice-th of every <see cref="Candidates"/> (End without state included).
    /// </summary>
    [Fact]
    public void TheRealDestinationDoesWhatThePhaseTableSays()
    {
        Gen.Select(Gen.Int[0, 19], Gen.Int[0, 63]).List[0, 24].Sample(
            steps =>
            {
                (List<RecordType> sequence, Outcome outcome, string message) = Predict(steps);
                using FakeSource source = FakeSource.Start(dir);
                SendLowMemory(source);
                for (int i = 0; i < sequence.Count; i++)
                {
                    Send(source, sequence[i], last: i == sequence.Count - 1);
                }

                switch (outcome)
                {
                    case Outcome.Failed:
                        source.ExpectFailed(message);
                        break;
                    case Outcome.Paused:
                        source.ExpectPaused(message);
                        break;
                    default:
                        source.ReturnPath.WaitFor(r => r.Type == RecordType.Complete, "Complete");

                        // A postcopy destination reads on until the source closes; a precopy one has returned already.
                        source.Connection.Abort();
                        Assert.True(source.Ended(TimeSpan.FromSeconds(30)), "the destination did not finish");
                        Assert.Null(source.IncomingError);
                        Assert.Equal(MigrationStatus.Completed, source.Destination.Machine.Migration.Stats!.Status);
                        Assert.Equal(RunState.Running, source.Destination.Machine.RunState);
                        break;
                }
            },
            iter: 200,
            threads: 1,
            print: steps => string.Join(", ", Predict(steps).Sequence));
    }

    /// <summary>
    /// The records the steps stand for, up to and including the first one with an outcome (a Setup appended if none
    /// has), and that outcome with the text its message must contain.
    /// </summary>
    private static (List<RecordType> Sequence, Outcome Outcome, string Message) Predict(List<(int Pick, int Choice)> steps)
    {
        var sequence = new List<RecordType>();
        IncomingPhase phase = IncomingPhase.Precopy;
        bool state = false;
        bool named = false;
        bool discarded = false;
        foreach ((int pick, int choice) in steps.Append((19, Array.IndexOf(Candidates, RecordType.Setup))))
        {
            RecordType[] from = pick < 18 ? [.. Candidates.Where(t => phase.Accepts(t) && (state || t is not (RecordType.End or RecordType.PostcopyRun)))] : Candidates;
            RecordType type = from[choice % from.Length];
            sequence.Add(type);
            if (!phase.Accepts(type))
            {
                return (sequence, phase.GuestRunsHere() ? Outcome.Paused : Outcome.Failed, phase.Refusal(type));
            }

            switch (type)
            {
                case RecordType.State when state:
                    return (sequence, Outcome.Failed, "appears twice");
                case RecordType.PostcopyName when named:
                    return (sequence, Outcome.Failed, "a second PostcopyName record");
                case RecordType.End or RecordType.PostcopyRun when !state:
                    return (sequence, Outcome.Failed, "the migration stream lacks state for");
                case RecordType.End:
                    return (sequence, Outcome.Completed, string.Empty);
                case RecordType.PostcopyRun when !discarded:
                    // Nothing was discarded, so every page is here: Complete at once, and whatever the source sends
                    // after that is only logged (docs/migration.md, Destination states).
                    return (sequence, Outcome.Completed, string.Empty);
            }

            state |= type == RecordType.State;
            discarded |= type == RecordType.PostcopyDiscard;
            named |= type == RecordType.PostcopyName;
            phase = phase.After(type);
        }

        throw new InvalidOperationException("unreachable: no phase accepts Setup");
    }

    /// <summary>The spin guest's code, data and stack, as precopy pages: a guest started from them runs its loop.</summary>
    private static void SendLowMemory(FakeSource source)
    {
        byte[] low = Origin.Value.LowMemory;
        for (int offset = 0; offset < low.Length; offset += 4096)
        {
            PageRecord.Write(source.Writer, 0, (ulong)offset, low.AsSpan(offset, 4096));
        }
    }

    /// <summary>
    /// One well-formed record of <paramref name="type"/> (State: every section, as a source sends them). Pages and
    /// discards land at 1 MiB and in [8 MiB, 9 MiB), which the spin guest never touches: a guest running here never waits on them.
    /// </summary>
    private static void Send(FakeSource source, RecordType type, bool last)
    {
        RecordWriter writer = source.Writer;
        switch (type)
        {
            case RecordType.Page:
                PageRecord.WriteData(writer, 0, 1ul << 20, Filled);
                break;
            case RecordType.PassEnd:
                writer.Write(type, [1, 0, 0, 0]);
                break;
            case RecordType.PostcopyAdvise:
                // No flags: MISSING faults, no preempt channel (FakeSource's destination has it off).
                writer.Write(type, [0, 0, 0, 0]);
                break;
            case RecordType.State:
                foreach (StateSection section in Origin.Value.Sections)
                {
                    section.Write(writer);
                }

                break;
            case RecordType.End or RecordType.PostcopyRun:
                StreamSeal.Write(writer, type);
                break;
            case RecordType.PostcopyName or RecordType.PostcopyResume:
                writer.Write(type, Guid.NewGuid().ToByteArray());
                break;
            case RecordType.PostcopyDiscard:
                DiscardRecord.Write(writer, 0, [(8ul << 20, 1ul << 20)]);
                break;
            case RecordType.Setup:
                RamLayout.Of(source.Destination.Machine.Ram).Write(writer);
                break;
            case RecordType.PageRequest:
                writer.Write(type, new byte[18]);
                break;
            default:
                writer.Write(type, []);
                break;
        }

        try
        {
            writer.Flush();
        }
        catch (IOException) when (last)
        {
            // The destination refused the record and closed while the rest of a State step was on its way.
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
            // Cleaned up with the rest of temp eventually.
        }
    }
}
