using Vmm.Migration.Stream;

namespace Vmm.Migration;

/// <summary>Opaque, versioned machine state (a vCPU, a device): migration carries it and never looks inside.</summary>
public sealed record StateSection(string Name, int Version, byte[] Data)
{
    public void Write(RecordWriter writer)
    {
        var payload = writer.Begin(RecordType.State);
        payload.String(Name);
        payload.U32((uint)Version);
        payload.Blob(Data);
        payload.Commit();
    }

    public static StateSection Read(Record record)
    {
        PayloadReader reader = record.Reader();
        var section = new StateSection(reader.Name(), (int)reader.U32(), reader.Blob().ToArray());
        reader.End();
        return section;
    }
}
