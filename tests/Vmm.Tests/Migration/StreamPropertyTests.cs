using CsCheck;
using Vmm.Migration;
using Vmm.Migration.Destination;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// Property tests (CsCheck, shrinking to the smallest failing input) for what a peer controls: the record reader and
/// every payload parser, fed arbitrary records and bytes, end in a record or a <see cref="MigrationStreamException"/> —
/// never another exception (issue 18 found an OverflowException this way) — and the destination's phase table never
/// lets through a sequence that would start a wrong guest or reload a running one.
/// </summary>
public sealed class StreamPropertyTests
{
    private static readonly RecordType[] Types = Enum.GetValues<RecordType>();

    /// <summary>A well-framed record of any type with an arbitrary payload (valid CRC: the parsers see it).</summary>
    private static readonly Gen<(RecordType Type, byte[] Payload)> AnyRecord =
        Gen.Select(Gen.Int[0, Types.Length - 1].Select(i => Types[i]), Gen.Byte.Array[0, 96]);

    [Fact]
    public void WhatTheWriterWritesTheReaderReadsWithTheSameDigest()
    {
        AnyRecord.List[0, 24].Sample(
            records =>
            {
                using var stream = new MemoryStream();
                var writer = new RecordWriter(stream, maxPayload: 1024);
                foreach ((RecordType type, byte[] payload) in records)
                {
                    writer.Write(type, payload.AsSpan(0, Math.Min(payload.Length, RecordLimits.MaxPayload(type))));
                }

                writer.Flush();
                stream.Position = 0;
                var reader = new RecordReader(stream, maxPayload: 1024);
                foreach ((RecordType type, byte[] payload) in records)
                {
                    Vmm.Migration.Stream.Record record = reader.Read();
                    Assert.Equal(type, record.Type);
                    Assert.True(record.Payload.SequenceEqual(payload.AsSpan(0, Math.Min(payload.Length, RecordLimits.MaxPayload(type)))));
                }

                Assert.Equal(writer.Records, reader.Records);
                Assert.Equal(writer.Digest, reader.Digest);
                Assert.Throws<MigrationStreamException>(() => reader.Read());
            },
            iter: 2000);
    }

    /// <summary>Arbitrary records through every parser a peer's record reaches: a parse or a stream error, nothing else.</summary>
    [Fact]
    public void EveryParserEndsInAValueOrAStreamError()
    {
        AnyRecord.List[1, 16].Sample(
            records =>
            {
                using var stream = new MemoryStream();
                var writer = new RecordWriter(stream, maxPayload: 1024);
                foreach ((RecordType type, byte[] payload) in records)
                {
                    writer.Write(type, payload.AsSpan(0, Math.Min(payload.Length, RecordLimits.MaxPayload(type))));
                }

                writer.Flush();
                stream.Position = 0;
                var reader = new RecordReader(stream, maxPayload: 1024);
                for (int i = 0; i < records.Count; i++)
                {
                    OnlyStreamErrors(() => Parse(reader.Read()));
                }
            },
            iter: 5000);
    }

    /// <summary>Arbitrary bytes (a valid record with some bytes flipped, or noise) into the reader: a stream error at worst.</summary>
    [Fact]
    public void CorruptBytesEndInAStreamError()
    {
        Gen.Select(AnyRecord, Gen.Int[0, 200], Gen.Byte).Sample(
            sample =>
            {
                ((RecordType type, byte[] payload), int at, byte flip) = sample;
                using var stream = new MemoryStream();
                var writer = new RecordWriter(stream, maxPayload: 1024);
                writer.Write(type, payload.AsSpan(0, Math.Min(payload.Length, RecordLimits.MaxPayload(type))));
                writer.Flush();
                byte[] bytes = stream.ToArray();
                bytes[at % bytes.Length] ^= flip;
                var reader = new RecordReader(new MemoryStream(bytes), maxPayload: 1024);
                OnlyStreamErrors(() =>
                {
                    while (true)
                    {
                        Parse(reader.Read());
                    }
                });
            },
            iter: 5000);
    }

    /// <summary>
    /// Any sequence of record types walked through the destination's phase table: End is never accepted after a
    /// discard; PostcopyRun at most once and only after Listen; nothing but pages (and one PushDone) after Run; a Page
    /// never between DiscardSync and Listen; PostcopyAdvise at most once; PostcopyName only between Advise and the first
    /// discard (a second one is refused by the destination itself); PostcopyResume never (it only opens a recovery).
    /// </summary>
    [Fact]
    public void ThePhaseTableNeverAcceptsAWrongGuest()
    {
        Gen.Int[0, Types.Length - 1].Select(i => Types[i]).List[0, 40].Sample(
            sequence =>
            {
                IncomingPhase phase = IncomingPhase.Precopy;
                bool discarded = false;
                bool listened = false;
                bool synced = false;
                int runs = 0;
                int advises = 0;
                foreach (RecordType type in sequence)
                {
                    if (!phase.Accepts(type))
                    {
                        continue;
                    }

                    Assert.False(type == RecordType.End && discarded, "End after a discard");
                    Assert.False(type == RecordType.PostcopyRun && (!listened || runs > 0), "Run without Listen, or twice");
                    Assert.False(runs > 0 && type is not (RecordType.Page or RecordType.PostcopyPushDone), $"{type} after Run");
                    Assert.False(type == RecordType.Page && synced && !listened, "a Page between DiscardSync and Listen");
                    Assert.False(type == RecordType.PostcopyAdvise && advises > 0, "a second PostcopyAdvise");
                    Assert.False(type == RecordType.PostcopyName && (advises == 0 || discarded || synced || listened), "PostcopyName anywhere but right after PostcopyAdvise");
                    Assert.False(type is RecordType.Setup or >= RecordType.PostcopyPreemptChannel && type != RecordType.PostcopyName, $"{type} on the main stream");
                    discarded |= type == RecordType.PostcopyDiscard;
                    listened |= type == RecordType.PostcopyListen;
                    synced |= type == RecordType.PostcopyDiscardSync;
                    runs += type == RecordType.PostcopyRun ? 1 : 0;
                    advises += type == RecordType.PostcopyAdvise ? 1 : 0;
                    if (type == RecordType.End)
                    {
                        return;
                    }

                    phase = phase.After(type);
                }
            },
            iter: 20000);
    }

    private static void OnlyStreamErrors(Action parse)
    {
        try
        {
            parse();
        }
        catch (MigrationStreamException)
        {
            // The only way a peer's bytes may fail.
        }
    }

    /// <summary>What the destination and the source do with each type's payload before acting on it.</summary>
    private static void Parse(Vmm.Migration.Stream.Record record)
    {
        switch (record.Type)
        {
            case RecordType.Setup:
                _ = RamLayout.Read(record);
                break;
            case RecordType.Page:
                _ = PageRecord.Read(record);
                break;
            case RecordType.State:
                _ = StateSection.Read(record);
                break;
            case RecordType.PostcopyDiscard:
                _ = DiscardRecord.Read(record);
                break;
            case RecordType.End or RecordType.PostcopyRun:
                PayloadReader seal = record.Reader();
                seal.U64();
                seal.U32();
                seal.End();
                break;
            case RecordType.Error:
                _ = PeerText.Message(record.Reader().String());
                break;
            case RecordType.PageRequest:
                PayloadReader request = record.Reader();
                request.U16();
                request.U64();
                request.U64();
                break;
            default:
                PayloadReader payload = record.Reader();
                while (payload.Remaining > 0)
                {
                    payload.U8();
                }

                break;
        }
    }
}
