using Vmm.Devices;
using Vmm.Linux;

namespace Vmm.Serial;

/// <summary>Guest COM1 output straight to file descriptor 1: no buffering, no encoding, nothing else on stdout.</summary>
public sealed unsafe class StdoutSerialSink : ISerialSink
{
    public void Write(ReadOnlySpan<byte> bytes)
    {
        fixed (byte* start = bytes)
        {
            int done = 0;
            while (done < bytes.Length)
            {
                nint written = Unistd.Write(1, start + done, (nuint)(bytes.Length - done));
                if (written <= 0)
                {
                    // stdout closed or broken: the guest keeps running, its output goes nowhere.
                    return;
                }

                done += (int)written;
            }
        }
    }
}

/// <summary>Guest COM1 output to a file, flushed per write so a crash loses nothing.</summary>
public sealed class FileSerialSink(string path) : ISerialSink, IDisposable
{
    private readonly FileStream stream = new(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 1);

    public void Write(ReadOnlySpan<byte> bytes)
    {
        stream.Write(bytes);
        stream.Flush();
    }

    public void Dispose() => stream.Dispose();
}

/// <summary>--serial none.</summary>
public sealed class NullSerialSink : ISerialSink
{
    public void Write(ReadOnlySpan<byte> bytes)
    {
    }
}
