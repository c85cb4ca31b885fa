using Vmm.Devices;

namespace Vmm.Devices.Tests;

public sealed class DeviceStateEncodingTests
{
    [Fact]
    public void WriterAndReader_RoundTripEveryFieldType()
    {
        var writer = new DeviceStateWriter(initialCapacity: 1);
        writer.WriteByte(0xAB);
        writer.WriteBoolean(true);
        writer.WriteBoolean(false);
        writer.WriteUInt16(0xBEEF);
        writer.WriteUInt32(0xDEADBEEF);
        writer.WriteInt32(-2);
        writer.WriteUInt64(0x0123_4567_89AB_CDEF);
        writer.WriteInt64(long.MinValue);
        writer.WriteBytes([9, 8, 7]);
        var bytes = writer.ToArray();
        Assert.Equal(1 + 1 + 1 + 2 + 4 + 4 + 8 + 8 + 3, bytes.Length);
        Assert.Equal(bytes.Length, writer.Length);

        var reader = new DeviceStateReader("test", bytes);
        Assert.Equal(0xAB, reader.ReadByte());
        Assert.True(reader.ReadBoolean());
        Assert.False(reader.ReadBoolean());
        Assert.Equal(0xBEEF, reader.ReadUInt16());
        Assert.Equal(0xDEADBEEF, reader.ReadUInt32());
        Assert.Equal(-2, reader.ReadInt32());
        Assert.Equal(0x0123_4567_89AB_CDEFUL, reader.ReadUInt64());
        Assert.Equal(long.MinValue, reader.ReadInt64());
        Assert.Equal([9, 8, 7], reader.ReadBytes(3).ToArray());
        Assert.Equal(0, reader.Remaining);
        reader.EnsureFullyRead();
    }

    [Fact]
    public void Writer_IsLittleEndian()
    {
        var writer = new DeviceStateWriter();
        writer.WriteUInt32(0x11223344);
        writer.WriteUInt16(0x5566);

        Assert.Equal([0x44, 0x33, 0x22, 0x11, 0x66, 0x55], writer.ToArray());
    }

    [Fact]
    public void Reader_Truncated_ThrowsWithSectionAndOffset()
    {
        byte[] bytes = [1, 2, 3];

        var error = Assert.Throws<InvalidDataException>(() =>
        {
            var reader = new DeviceStateReader("rtc@0x70", bytes);
            reader.ReadUInt16();
            reader.ReadUInt16();
        });

        Assert.Contains("rtc@0x70", error.Message);
        Assert.Contains("offset 2", error.Message);
    }

    [Fact]
    public void Reader_TrailingBytes_Throw()
    {
        byte[] bytes = [1, 2, 3];

        var error = Assert.Throws<InvalidDataException>(() =>
        {
            var reader = new DeviceStateReader("pit", bytes);
            reader.ReadByte();
            reader.EnsureFullyRead();
        });

        Assert.Contains("2 unexpected trailing byte(s)", error.Message);
    }

    [Fact]
    public void Reader_BooleanOtherThanZeroOrOne_Throws()
    {
        byte[] bytes = [2];

        Assert.Throws<InvalidDataException>(() => new DeviceStateReader("x", bytes).ReadBoolean());
    }

    [Fact]
    public void RequireVersion_AcceptsOnlyTheExpectedVersion()
    {
        DeviceStateReader.RequireVersion("x", 3, 3);

        var error = Assert.Throws<InvalidDataException>(() => DeviceStateReader.RequireVersion("uart", 1, 4));
        Assert.Contains("'uart'", error.Message);
        Assert.Contains("version 4", error.Message);
    }
}
