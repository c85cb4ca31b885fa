using System.Net.Sockets;
using System.Runtime.InteropServices;
using Vmm.Migration;
using Vmm.Migration.Postcopy;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>One record seen on a migration connection, copied out of the reader's buffer.</summary>
internal sealed record SeenRecord(long Seq, RecordType Type)
{
    public int Block { get; init; }

    public ulong Offset { get; init; }

    public ulong Length { get; init; }

    /// <summary>Page: sent as a zero page (flag only, <see cref="Data"/> is null).</summary>
    public bool Zero { get; init; }

    public byte[]? Data { get; init; }

    public List<(ulong Offset, ulong Length)>? Ranges { get; init; }

    public StateSection? Section { get; init; }

    public RamLayout? Layout { get; init; }

    public string? Text { get; init; }

    public uint Pass { get; init; }

    public override string ToString() => Type switch
    {
        RecordType.Page => $"#{Seq} Page {Block}:0x{Offset:x}{(Zero ? " zero" : string.Empty)}",
        RecordType.PageRequest => $"#{Seq} PageRequest {Block}:0x{Offset:x}+0x{Length:x}",
        RecordType.Error => $"#{Seq} Error '{Text}'",
        _ => $"#{Seq} {Type}",
    };
}

/// <summary>
/// Reads one direction of a migration connection on its own thread and keeps every record, parsed and copied, in
/// arrival order (the sequence number is the index). Tests wait on it with bounded waits; it never blocks them.
/// </summary>
internal sealed class RecordLog : IDisposable
{
    private readonly RecordReader reader;
    private readonly System.IO.Stream? header;
    private readonly Action<SeenRecord>? onRecord;
    private readonly List<SeenRecord> records = [];
    private readonly object gate = new();
    private readonly Thread thread;
    private string? closed;

    /// <param name="reader">The direction to read.</param>
    /// <param name="name">For messages.</param>
    /// <param name="header">When set, the stream header is read from it first (the main stream).</param>
    /// <param name="onRecord">Called on the reading thread after each record is logged (a fake peer's reactions).</param>
    public RecordLog(RecordReader reader, string name, System.IO.Stream? header = null, Action<SeenRecord>? onRecord = null)
    {
        this.reader = reader;
        this.header = header;
        this.onRecord = onRecord;
        Name = name;
        thread = new Thread(Loop) { IsBackground = true, Name = $"test reader: {name}" };
        thread.Start();
    }

    public string Name { get; }

    /// <summary>Why reading stopped (closed, corrupt, or a reaction failed); null while it runs.</summary>
    public string? ClosedReason
    {
        get
        {
            lock (gate)
            {
                return closed;
            }
        }
    }

    /// <summary>Sequence number of the latest record, -1 if none yet.</summary>
    public long Last
    {
        get
        {
            lock (gate)
            {
                return records.Count - 1;
            }
        }
    }

    public SeenRecord[] Snapshot()
    {
        lock (gate)
        {
            return [.. records];
        }
    }

    /// <summary>
    /// The first record after <paramref name="after"/> that matches, waiting at most <paramref name="seconds"/>. An
    /// Error record from the peer or the end of the connection fails the test at once.
    /// </summary>
    public SeenRecord WaitFor(Func<SeenRecord, bool> match, string what, long after = -1, double seconds = 30)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(seconds);
        int next = (int)(after + 1);
        lock (gate)
        {
            while (true)
            {
                for (; next < records.Count; next++)
                {
                    SeenRecord record = records[next];
                    if (match(record))
                    {
                        return record;
                    }

                    if (record.Type == RecordType.Error)
                    {
                        Assert.Fail($"{Name}: the peer failed while the test waited for {what}: {record.Text}");
                    }
                }

                if (closed is not null)
                {
                    Assert.Fail($"{Name} ended ({closed}) while the test waited for {what}; last records: {Tail()}");
                }

                TimeSpan left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero)
                {
                    Assert.Fail($"{Name}: timed out after {seconds} s waiting for {what}; last records: {Tail()}");
                }

                Monitor.Wait(gate, left < TimeSpan.FromMilliseconds(50) ? left : TimeSpan.FromMilliseconds(50));
            }
        }
    }

    private string Tail() => string.Join(", ", records.Skip(Math.Max(0, records.Count - 8)));

    private void Loop()
    {
        try
        {
            if (header is not null)
            {
                StreamHeader.Read(header);
            }

            while (true)
            {
                SeenRecord seen = Parse(reader.Read());
                lock (gate)
                {
                    seen = seen with { Seq = records.Count };
                    records.Add(seen);
                    Monitor.PulseAll(gate);
                }

                onRecord?.Invoke(seen);
            }
        }
        catch (Exception e)
        {
            lock (gate)
            {
                closed = $"{e.GetType().Name}: {e.Message}";
                Monitor.PulseAll(gate);
            }
        }
    }

    private static SeenRecord Parse(Vmm.Migration.Stream.Record record)
    {
        var seen = new SeenRecord(-1, record.Type);
        switch (record.Type)
        {
            case RecordType.Page:
                PageRecord.Parsed page = PageRecord.Read(record).Expanded(new byte[64 * 4096]);
                return seen with { Block = page.BlockIndex, Offset = page.Offset, Length = page.Length, Zero = page.Zero, Data = page.Zero ? null : page.Data.ToArray() };

            case RecordType.Setup:
                return seen with { Layout = RamLayout.Read(record) };

            case RecordType.PostcopyDiscard:
                (int block, List<(ulong Offset, ulong Length)> ranges) = DiscardRecord.Read(record);
                return seen with { Block = block, Ranges = ranges };

            case RecordType.State:
                return seen with { Section = StateSection.Read(record) };

            case RecordType.PassEnd:
                return seen with { Pass = record.Reader().U32() };

            case RecordType.PageRequest:
                PayloadReader request = record.Reader();
                return seen with { Block = request.U16(), Offset = request.U64(), Length = request.U64() };

            case RecordType.Error:
                return seen with { Text = record.Reader().String() };

            default:
                return seen;
        }
    }

    /// <summary>The connection must be aborted first; then the thread ends promptly.</summary>
    public void Dispose() => thread.Join(TimeSpan.FromSeconds(5));
}

/// <summary>Plumbing for fake migration peers.</summary>
internal static partial class FakePeer
{
    /// <summary>Accepts one connection, or fails the test when nobody connects in time.</summary>
    public static MigrationConnection AcceptWithin(Socket listener, TimeSpan timeout)
    {
        Assert.True(listener.Poll(timeout, SelectMode.SelectRead), $"nobody connected within {timeout.TotalSeconds} s");
        return MigrationConnection.Accept(listener);
    }

    /// <summary>
    /// Copies guest memory through libc's memcpy: the thread is in native code (preemptive mode for the GC) while it
    /// is blocked in a userfaultfd fault, so a blocked reader can never hold up a garbage collection.
    /// </summary>
    public static byte[] ReadNative(nint address, int length)
    {
        nint buffer = Marshal.AllocHGlobal(length);
        try
        {
            Memcpy(buffer, address, (nuint)length);
            byte[] copy = new byte[length];
            Marshal.Copy(buffer, copy, 0, length);
            return copy;
        }
        finally
        {
            Marshal.FreeHGlobal(buffer);
        }
    }

    [LibraryImport("libc", EntryPoint = "memcpy")]
    private static partial nint Memcpy(nint destination, nint source, nuint count);

    /// <summary>A recognisable, non-zero 4 KiB page.</summary>
    public static byte[] Pattern(byte seed, int length = 4096)
    {
        byte[] page = new byte[length];
        for (int i = 0; i < page.Length; i++)
        {
            page[i] = unchecked((byte)(seed + (i * 7) + (i >> 8) + 1));
        }

        page[0] = seed == 0 ? (byte)1 : seed;
        return page;
    }
}
