using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// The stream checksum against the standard check value and against a bit-at-a-time reference, at every length
/// around the three-lane stripes the fast path cuts long inputs into, and when a value is built up piecewise.
/// </summary>
public sealed class Crc32CTests
{
    [Fact]
    public void CheckValueIsTheStandardOne()
    {
        // CRC-32C of the ASCII digits 1..9 (RFC 3720, iSCSI).
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(3071)]
    [InlineData(3072)]
    [InlineData(3073)]
    [InlineData(4096)]
    [InlineData(4096 + 9)]
    [InlineData(6144)]
    [InlineData(9215)]
    [InlineData(65536 + 27)]
    public void MatchesTheBitwiseReference(int length)
    {
        byte[] data = new byte[length];
        new Random(length).NextBytes(data);
        Assert.Equal(Reference(data), Crc32C.Compute(data));
    }

    [Fact]
    public void EveryLengthUpToThreeStripesMatches()
    {
        byte[] data = new byte[3 * 3072 + 64];
        new Random(5).NextBytes(data);
        for (int length = 0; length <= data.Length; length += 61)
        {
            Assert.Equal(Reference(data.AsSpan(0, length)), Crc32C.Compute(data.AsSpan(0, length)));
        }
    }

    [Fact]
    public void AppendingPiecesEqualsTheWhole()
    {
        byte[] data = new byte[20000];
        new Random(9).NextBytes(data);
        uint whole = Crc32C.Compute(data);
        foreach (int cut in new[] { 1, 5, 3072, 4096, 7000, 19999 })
        {
            uint pieces = ~Crc32C.Append(Crc32C.Append(uint.MaxValue, data.AsSpan(0, cut)), data.AsSpan(cut));
            Assert.Equal(whole, pieces);
        }
    }

    /// <summary>CRC-32C one bit at a time (reflected polynomial 0x82F63B78): slow and obviously right.</summary>
    private static uint Reference(ReadOnlySpan<byte> data)
    {
        uint crc = uint.MaxValue;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int bit = 0; bit < 8; bit++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
            }
        }

        return ~crc;
    }
}
