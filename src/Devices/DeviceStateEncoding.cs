using System.Buffers;
using System.Buffers.Binary;

namespace Vmm.Devices;

/// <summary>
/// Builds a device state payload: fixed-width little-endian fields, so a section written on one host reads back
/// identically on another regardless of either's endianness or .NET version.
/// </summary>
public sealed class DeviceStateWriter
{
    private readonly ArrayBufferWriter<byte> _buffer;

    public DeviceStateWriter(int initialCapacity = 64) => _buffer = new ArrayBufferWriter<byte>(Math.Max(1, initialCapacity));

    public int Length => _buffer.WrittenCount;

    public void WriteByte(byte value)
    {
        _buffer.GetSpan(1)[0] = value;
        _buffer.Advance(1);
    }

    public void WriteBoolean(bool value) => WriteByte(value ? (byte)1 : (byte)0);

    public void WriteUInt16(ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(_buffer.GetSpan(sizeof(ushort)), value);
        _buffer.Advance(sizeof(ushort));
    }

    public void WriteUInt32(uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.GetSpan(sizeof(uint)), value);
        _buffer.Advance(sizeof(uint));
    }

    public void WriteInt32(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(_buffer.GetSpan(sizeof(int)), value);
        _buffer.Advance(sizeof(int));
    }

    public void WriteUInt64(ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_buffer.GetSpan(sizeof(ulong)), value);
        _buffer.Advance(sizeof(ulong));
    }

    public void WriteInt64(long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(_buffer.GetSpan(sizeof(long)), value);
        _buffer.Advance(sizeof(long));
    }

    /// <summary>Writes raw bytes with no length prefix; pair with a length field when the size varies.</summary>
    public void WriteBytes(ReadOnlySpan<byte> bytes) => _buffer.Write(bytes);

    public byte[] ToArray() => _buffer.WrittenSpan.ToArray();
}

/// <summary>
/// Reads a payload written by <see cref="DeviceStateWriter"/>. Every failure is an
/// <see cref="InvalidDataException"/> naming the section and offset, because a bad section means a broken or
/// mismatched migration stream, and the operator needs to know which device and where.
/// </summary>
public ref struct DeviceStateReader
{
    private readonly ReadOnlySpan<byte> _state;
    private readonly string _sectionName;
    private int _position;

    public DeviceStateReader(string sectionName, ReadOnlySpan<byte> state)
    {
        _sectionName = sectionName;
        _state = state;
        _position = 0;
    }

    public readonly int Position => _position;

    public readonly int Remaining => _state.Length - _position;

    /// <exception cref="InvalidDataException"><paramref name="actual"/> differs from <paramref name="expected"/>.</exception>
    public static void RequireVersion(string sectionName, int expected, int actual)
    {
        if (actual != expected)
        {
            throw new InvalidDataException(
                $"Device state section '{sectionName}' has version {actual}, but this build only understands version {expected}.");
        }
    }

    public byte ReadByte() => Take(1)[0];

    public bool ReadBoolean()
    {
        int at = _position;
        return ReadByte() switch
        {
            0 => false,
            1 => true,
            var other => throw new InvalidDataException(
                $"Device state section '{_sectionName}' has {other} at offset {at} where a boolean (0 or 1) was expected."),
        };
    }

    public ushort ReadUInt16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(sizeof(ushort)));

    public uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(sizeof(uint)));

    public int ReadInt32() => BinaryPrimitives.ReadInt32LittleEndian(Take(sizeof(int)));

    public ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(sizeof(ulong)));

    public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(sizeof(long)));

    /// <summary>Returns the next <paramref name="count"/> bytes as a view of the payload (no copy).</summary>
    public ReadOnlySpan<byte> ReadBytes(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return Take(count);
    }

    /// <summary>Throws if bytes remain: a longer payload than expected means a layout mismatch, not slack.</summary>
    public readonly void EnsureFullyRead()
    {
        if (Remaining != 0)
        {
            throw new InvalidDataException(
                $"Device state section '{_sectionName}' has {Remaining} unexpected trailing byte(s) after offset {_position} " +
                $"(payload is {_state.Length} bytes).");
        }
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > Remaining)
        {
            throw new InvalidDataException(
                $"Device state section '{_sectionName}' is truncated: needed {count} byte(s) at offset {_position}, " +
                $"but the payload is only {_state.Length} bytes.");
        }

        var slice = _state.Slice(_position, count);
        _position += count;
        return slice;
    }
}
