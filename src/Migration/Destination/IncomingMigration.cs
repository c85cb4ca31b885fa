using System.Diagnostics;
using System.Net.Sockets;
using Serilog;
using Vmm.Migration.Stream;
using Vmm.Ram;

namespace Vmm.Migration.Destination;

/// <summary>
/// The destination of a migration: accepts one connection, checks the source's RAM layout against this machine's
/// before touching guest memory, writes the pages it receives, loads the vCPU and device state, confirms, and only
/// then starts the guest. Anything wrong in the stream ends it with an error and no guest runs here.
/// </summary>
public sealed class IncomingMigration(IMigratableMachine machine, ILogger log)
{
    private const ulong PageSize = DirtyBitmap.PageSize;

    private readonly Stopwatch clock = new();
    private ulong pagesReceived;
    private ulong zeroPages;
    private int passes;

    /// <summary>Binds and listens; a stale Unix socket file is replaced.</summary>
    public static Socket Listen(MigrationUri uri)
    {
        Socket listener = uri.CreateSocket();
        try
        {
            if (uri.EndPoint is UnixDomainSocketEndPoint unix && File.Exists(unix.ToString()))
            {
                File.Delete(unix.ToString());
            }

            if (uri.EndPoint is System.Net.IPEndPoint)
            {
                listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            }

            listener.Bind(uri.EndPoint);
            listener.Listen(1);
            return listener;
        }
        catch (SocketException e)
        {
            listener.Dispose();
            throw new MigrationFailedException($"cannot listen on {uri.Text}: {e.Message}", e);
        }
    }

    /// <summary>Waits for the source on <paramref name="listener"/> and receives the whole migration.</summary>
    public void Run(Socket listener)
    {
        using MigrationConnection connection = MigrationConnection.Accept(listener);
        log.Information("incoming migration: source connected");
        try
        {
            Receive(connection);
        }
        catch (Exception e) when (e is MigrationStreamException or InvalidDataException or MigrationFailedException)
        {
            TrySendError(connection, e.Message);
            throw;
        }
    }

    public void Receive(MigrationConnection connection)
    {
        clock.Start();
        StreamHeader.Read(connection.InputStream);
        Record setup = connection.Reader.Read();
        if (setup.Type != RecordType.Setup)
        {
            throw new MigrationStreamException($"protocol error: the stream starts with {setup.Type}, not Setup");
        }

        RamLayout source = RamLayout.Read(setup);
        RamBlock[] blocks = MatchLayout(source);
        connection.Writer.Write(RecordType.SetupAccepted, []);
        connection.Writer.Flush();

        // Pages that hold data here: a zero page only needs clearing where data was written before.
        DirtyBitmap[] hasData = [.. blocks.Select(b => new DirtyBitmap(b.MaxLength / PageSize))];
        var sections = new List<StateSection>();
        while (true)
        {
            Record record = connection.Reader.Read();
            switch (record.Type)
            {
                case RecordType.Page:
                    PlacePage(PageRecord.Read(record), blocks, hasData);
                    break;

                case RecordType.PassEnd:
                    passes++;
                    break;

                case RecordType.State:
                    sections.Add(StateSection.Read(record));
                    break;

                case RecordType.End:
                    record.Reader().End();
                    machine.LoadState(sections);
                    connection.Writer.Write(RecordType.Complete, []);
                    connection.Writer.Flush();
                    machine.StartIncomingGuest();
                    log.Information(
                        "incoming migration complete in {Ms} ms: {Pages} pages ({Zero} zero) over {Passes} passes; the guest runs here now",
                        clock.ElapsedMilliseconds, pagesReceived, zeroPages, passes);
                    return;

                default:
                    throw new MigrationStreamException($"protocol error: unexpected {record.Type} record in a precopy stream");
            }
        }
    }

    /// <summary>Maps the source's blocks onto ours by name, or refuses with every difference listed.</summary>
    private RamBlock[] MatchLayout(RamLayout source)
    {
        IReadOnlyList<string> problems = source.Mismatches(RamLayout.Of(machine.Ram));
        if (problems.Count > 0)
        {
            throw new MigrationFailedException($"the source's RAM layout does not match this machine: {string.Join("; ", problems)}");
        }

        var blocks = new RamBlock[source.Blocks.Count];
        for (int i = 0; i < blocks.Length; i++)
        {
            RamBlockDescriptor remote = source.Blocks[i];
            RamBlock local = machine.Ram.FindByName(remote.Name)!;
            if (local.UsedLength != remote.UsedLength)
            {
                machine.ResizeRamBlock(remote.Name, remote.UsedLength);
            }

            blocks[i] = local;
        }

        return blocks;
    }

    private void PlacePage(PageRecord.Parsed page, RamBlock[] blocks, DirtyBitmap[] hasData)
    {
        if (page.BlockIndex >= blocks.Length)
        {
            throw new MigrationStreamException($"corrupt migration stream: page for block index {page.BlockIndex}, but the layout has {blocks.Length} blocks");
        }

        RamBlock block = blocks[page.BlockIndex];
        if (page.Length == 0 || page.Length % PageSize != 0 || page.Offset % PageSize != 0 || page.Offset > block.UsedLength || page.Length > block.UsedLength - page.Offset)
        {
            throw new MigrationStreamException($"corrupt migration stream: page [0x{page.Offset:x}, +0x{page.Length:x}) is outside block '{block.Name}'");
        }

        DirtyBitmap data = hasData[page.BlockIndex];
        ulong first = page.Offset / PageSize;
        ulong count = page.Length / PageSize;
        if (page.Zero)
        {
            zeroPages += count;
            for (ulong p = first; p < first + count; p++)
            {
                if (data.TestAndClear(p))
                {
                    block.GetSpan(p * PageSize, (int)PageSize).Clear();
                }
            }
        }
        else
        {
            page.Data.CopyTo(block.GetSpan(page.Offset, (int)page.Length));
            data.SetRange(first, count);
        }

        pagesReceived += count;
    }

    private void TrySendError(MigrationConnection connection, string message)
    {
        try
        {
            var payload = connection.Writer.Begin(RecordType.Error);
            payload.String(message.Length > 4000 ? message[..4000] : message);
            payload.Commit();
            connection.Writer.Flush();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
            log.Debug("could not tell the source about the failure: {Message}", e.Message);
        }
    }
}
