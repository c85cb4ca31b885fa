using Vmm.Migration;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;

namespace Vmm.Fuzz;

/// <summary>
/// The starting inputs, written by the same writers a real migration uses (RamLayout, PageRecord, StateSection,
/// DiscardRecord, StreamSeal, ReturnPathWriter) for the <see cref="FakeMachine"/>'s layout: a whole precopy, a whole
/// postcopy switchover, and each return-path record; and both directions of two real migrations between fake
/// machines, a precopy and a postcopy (<see cref="RecordedMigration"/>). afl mutates from there.
/// </summary>
internal static class SeedCorpus
{
    public static void Write(string directory)
    {
        string destination = Directory.CreateDirectory(Path.Combine(directory, "destination")).FullName;
        string returnPath = Directory.CreateDirectory(Path.Combine(directory, "return-path")).FullName;
        using var machine = new FakeMachine();
        RamLayout layout = RamLayout.Of(machine.Ram);
        byte[] page = new byte[4096];
        new Random(18).NextBytes(page);

        File.WriteAllBytes(Path.Combine(destination, "precopy"), Stream(writer =>
        {
            layout.Write(writer);
            PageRecord.Write(writer, 0, 0x7000, page);
            PageRecord.WriteZeros(writer, 0, 0x8000, 0x3000);
            PageRecord.Write(writer, 1, 0x1000, page);
            writer.Write(RecordType.PassEnd, [1, 0, 0, 0]);
            new StateSection("cpu0", 1, new byte[64]).Write(writer);
            StreamSeal.Write(writer, RecordType.End);
        }, header: true));

        // The xbzrle capability's delta pages: a page sent whole, then twice as a delta against it (one changed byte, then
        // a few runs, as XbzrleEncoding writes them), and a delta over a page the second block holds.
        File.WriteAllBytes(Path.Combine(destination, "precopy-xbzrle"), Stream(writer =>
        {
            layout.Write(writer);
            PageRecord.Write(writer, 0, 0x7000, page);
            PageRecord.Write(writer, 1, 0x1000, page);
            writer.Write(RecordType.PassEnd, [1, 0, 0, 0]);
            byte[] changed = (byte[])page.Clone();
            changed[0]++;
            PageRecord.WriteDelta(writer, 0, 0x7000, Delta(page, changed));
            byte[] again = (byte[])changed.Clone();
            again[200] ^= 0xFF;
            again[201] ^= 0xFF;
            again[4095] ^= 0x5A;
            PageRecord.WriteDelta(writer, 0, 0x7000, Delta(changed, again));
            PageRecord.WriteDelta(writer, 1, 0x1000, Delta(page, again));
            writer.Write(RecordType.PassEnd, [2, 0, 0, 0]);
            new StateSection("cpu0", 1, new byte[64]).Write(writer);
            StreamSeal.Write(writer, RecordType.End);
        }, header: true));

        File.WriteAllBytes(Path.Combine(destination, "postcopy"), Stream(writer =>
        {
            layout.Write(writer);
            writer.Write(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
            PageRecord.Write(writer, 0, 0x7000, page);
            writer.Write(RecordType.PassEnd, [1, 0, 0, 0]);
            DiscardRecord.Write(writer, 0, [(0x10000, 0x4000)]);
            writer.Write(RecordType.PostcopyDiscardSync, []);
            DiscardRecord.Write(writer, 1, [(0, 0x1000)]);
            writer.Write(RecordType.PostcopyListen, []);
            new StateSection("cpu0", 1, new byte[64]).Write(writer);
            StreamSeal.Write(writer, RecordType.PostcopyRun);
            PageRecord.Write(writer, 0, 0x10000, page);
            PageRecord.WriteZeros(writer, 0, 0x11000, 0x3000);
            PageRecord.Write(writer, 1, 0, page);
            writer.Write(RecordType.PostcopyPushDone, []);
        }, header: true));

        // Sparse pages (zero-run encoded): one in precopy, then in the postcopy push a record of one page and one of
        // two (a counter byte per page, as the dirty guests write them, and a page of zeros).
        byte[] sparse = new byte[4096];
        sparse[0] = 0x2A;
        sparse[3000] = 0x07;
        File.WriteAllBytes(Path.Combine(destination, "postcopy-sparse"), Stream(writer =>
        {
            layout.Write(writer);
            writer.Write(RecordType.PostcopyAdvise, [0, 0, 0, 0]);
            PageRecord.WriteSparsePage(writer, 0, 0x7000, sparse);
            writer.Write(RecordType.PassEnd, [1, 0, 0, 0]);
            DiscardRecord.Write(writer, 0, [(0x10000, 0x4000)]);
            writer.Write(RecordType.PostcopyDiscardSync, []);
            writer.Write(RecordType.PostcopyListen, []);
            new StateSection("cpu0", 1, new byte[64]).Write(writer);
            StreamSeal.Write(writer, RecordType.PostcopyRun);
            PageRecord.WriteSparsePage(writer, 0, 0x10000, sparse);
            PageRecord.WriteSparse(writer, 0, 0x11000, 2, [3, 0, 0, 1, 0x2B, 0, 0]);
            PageRecord.WriteZeros(writer, 0, 0x13000, 0x1000);
            writer.Write(RecordType.PostcopyPushDone, []);
        }, header: true));

        File.WriteAllBytes(Path.Combine(returnPath, "precopy"), Stream(writer =>
        {
            var answers = new ReturnPathWriter(writer);
            answers.Send(RecordType.SetupAccepted);
            answers.Send(RecordType.Complete);
        }, header: false));

        File.WriteAllBytes(Path.Combine(returnPath, "postcopy"), Stream(writer =>
        {
            var answers = new ReturnPathWriter(writer);
            answers.Send(RecordType.SetupAccepted);
            answers.SendAdviseAccepted(Guid.NewGuid().ToByteArray(), sharedRing: true);
            answers.SendDiscarded(sharedRingAttached: true);
            answers.RequestPage(0, 0x10000, 0x1000);
            answers.SendRunning(123_456_789);
            answers.SendError("the destination failed\n");
        }, header: false));

        foreach (bool postcopy in new[] { false, true })
        {
            (byte[] mainStream, byte[] answersBack) = RecordedMigration.Record(postcopy);
            string name = postcopy ? "recorded-postcopy" : "recorded-precopy";
            File.WriteAllBytes(Path.Combine(destination, name), mainStream);
            File.WriteAllBytes(Path.Combine(returnPath, name), answersBack);
        }
    }

    /// <summary>The delta the source would send for a page that went from <paramref name="previous"/> to <paramref name="current"/>.</summary>
    private static byte[] Delta(byte[] previous, byte[] current)
    {
        byte[] delta = new byte[XbzrleEncoding.PageSize];
        int length = XbzrleEncoding.Encode(previous, current, delta, delta.Length);
        return delta[..length];
    }

    /// <summary>The records <paramref name="write"/> writes, after the stream header when <paramref name="header"/>.</summary>
    private static byte[] Stream(Action<RecordWriter> write, bool header)
    {
        using var stream = new MemoryStream();
        if (header)
        {
            StreamHeader.Write(stream);
        }

        var writer = new RecordWriter(stream);
        write(writer);
        writer.Flush();
        return stream.ToArray();
    }
}
