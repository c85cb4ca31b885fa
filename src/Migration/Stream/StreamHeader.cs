using System.Buffers.Binary;

namespace Vmm.Migration.Stream;

/// <summary>The first 12 bytes of a stream: magic "VMMMIGR\0" and the format version.</summary>
public static class StreamHeader
{
    public const uint Version = 1;
    public const int Size = 12;

    private static ReadOnlySpan<byte> Magic => "VMMMIGR\0"u8;

    public static void Write(System.IO.Stream stream)
    {
        Span<byte> header = stackalloc byte[Size];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], Version);
        stream.Write(header);
    }

    /// <summary>
    /// Whether <paramref name="start"/>, the first bytes a peer sent, can begin a stream: the magic so far. A
    /// destination tells a vmm source (whose header may still be wrong) from anything else by this.
    /// </summary>
    public static bool CouldStartWithMagic(ReadOnlySpan<byte> start)
    {
        int length = Math.Min(start.Length, Magic.Length);
        return start[..length].SequenceEqual(Magic[..length]);
    }

    /// <param name="stream">The stream, at the header (or just past <paramref name="alreadyRead"/>).</param>
    /// <param name="alreadyRead">The header's first bytes, when the caller had to read them to know anything came.</param>
    public static void Read(System.IO.Stream stream, ReadOnlySpan<byte> alreadyRead = default)
    {
        Span<byte> header = stackalloc byte[Size];
        alreadyRead.CopyTo(header);
        try
        {
            stream.ReadExactly(header[alreadyRead.Length..]);
        }
        catch (EndOfStreamException e)
        {
            throw new MigrationStreamException("truncated migration stream: the connection closed before the stream header", e);
        }

        if (!header[..8].SequenceEqual(Magic))
        {
            throw new MigrationStreamException("not a vmm migration stream (bad magic)");
        }

        uint version = BinaryPrimitives.ReadUInt32LittleEndian(header[8..]);
        if (version != Version)
        {
            throw new MigrationStreamException($"migration stream version {version} is not supported (this vmm speaks version {Version})");
        }
    }
}
