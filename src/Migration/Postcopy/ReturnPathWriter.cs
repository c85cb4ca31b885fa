using Vmm.Migration.Stream;

namespace Vmm.Migration.Postcopy;

/// <summary>
/// The destination's side of the return path, shared by the receive thread and the fault thread: every record is
/// written and flushed whole under one lock, so a page request is on the wire as soon as it is made.
/// </summary>
public sealed class ReturnPathWriter(RecordWriter writer)
{
    private readonly object gate = new();

    public void Send(RecordType type)
    {
        lock (gate)
        {
            writer.Write(type, []);
            writer.Flush();
        }
    }

    public void RequestPage(int blockIndex, ulong offset, ulong length)
    {
        lock (gate)
        {
            var payload = writer.Begin(RecordType.PageRequest);
            payload.U16((ushort)blockIndex);
            payload.U64(offset);
            payload.U64(length);
            payload.Commit();
            writer.Flush();
        }
    }

    public void SendError(string message)
    {
        lock (gate)
        {
            var payload = writer.Begin(RecordType.Error);
            payload.String(message.Length > 4000 ? message[..4000] : message);
            payload.Commit();
            writer.Flush();
        }
    }
}
