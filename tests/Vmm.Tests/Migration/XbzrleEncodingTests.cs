using CsCheck;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// The delta encoding of the xbzrle capability: what the encoder writes the decoder turns back into the page, within
/// the limit the encoder is given; and a delta a hostile peer makes up is refused, never written past the page.
/// </summary>
public sealed class XbzrleEncodingTests
{
    private const int Page = XbzrleEncoding.PageSize;

    /// <summary>A page, and a set of changes to it: (position, length, seed) stretches overwritten with other bytes.</summary>
    private static readonly Gen<(byte[] Previous, (int Position, int Length, byte Seed)[] Changes)> PageAndChanges =
        Gen.Select(
            Gen.OneOf(Gen.Byte.Array[Page], Gen.Const(0).Select(_ => new byte[Page]), Gen.Byte[0, 3].Array[Page]),
            Gen.Select(Gen.Int[0, Page - 1], Gen.OneOf(Gen.Int[1, 4], Gen.Int[1, 64], Gen.Int[1, Page]), Gen.Byte).Array[0, 40]);

    private static byte[] Changed(byte[] previous, (int Position, int Length, byte Seed)[] changes)
    {
        byte[] current = (byte[])previous.Clone();
        foreach ((int position, int length, byte seed) in changes)
        {
            for (int i = position; i < Math.Min(Page, position + length); i++)
            {
                current[i] = (byte)(current[i] + seed + i);
            }
        }

        return current;
    }

    [Fact]
    public void WhatTheEncoderWritesTheDecoderTurnsBackIntoThePage()
    {
        PageAndChanges.Sample(
            (previous, changes) =>
            {
                byte[] current = Changed(previous, changes);
                byte[] output = new byte[Page * 2];
                int length = XbzrleEncoding.Encode(previous, current, output, output.Length);
                Assert.True(length >= 0, "with room for any delta the encoder never gives up");
                byte[] decoded = (byte[])previous.Clone();
                XbzrleEncoding.Apply(output.AsSpan(0, length), decoded);
                Assert.Equal(current, decoded);
                Assert.Equal(previous.AsSpan().SequenceEqual(current), length == 0);
            },
            iter: 3000);
    }

    [Fact]
    public void TheEncoderKeepsToItsLimitOrGivesUp()
    {
        Gen.Select(PageAndChanges, Gen.Int[0, Page]).Sample(
            (input, limit) =>
            {
                (byte[] previous, var changes) = input;
                byte[] current = Changed(previous, changes);
                byte[] output = new byte[Page];
                int length = XbzrleEncoding.Encode(previous, current, output, limit);
                int unlimited = XbzrleEncoding.Encode(previous, current, new byte[Page * 2], Page * 2);
                if (length < 0)
                {
                    Assert.True(unlimited > limit, $"gave up at limit {limit} on a delta of {unlimited} bytes");
                }
                else
                {
                    Assert.Equal(unlimited, length);
                    Assert.True(length <= limit);
                }
            },
            iter: 2000);
    }

    /// <summary>Any bytes as a delta: applied within the page, or refused as a corrupt stream; never another exception.</summary>
    [Fact]
    public void AnyBytesAreAppliedWithinThePageOrRefused()
    {
        Gen.Byte.Array[0, 64].Sample(
            delta =>
            {
                byte[] memory = new byte[Page * 3];
                Span<byte> page = memory.AsSpan(Page, Page);
                try
                {
                    XbzrleEncoding.Apply(delta, page);
                }
                catch (MigrationStreamException e)
                {
                    Assert.StartsWith("corrupt migration stream: XBZRLE delta: ", e.Message);
                }

                Assert.All(memory.AsSpan(0, Page).ToArray(), b => Assert.Equal(0, b));
                Assert.All(memory.AsSpan(2 * Page).ToArray(), b => Assert.Equal(0, b));
            },
            iter: 5000);
    }

    [Fact]
    public void OneChangedByteIsThreeBytesOfDelta()
    {
        byte[] previous = new byte[Page];
        byte[] current = new byte[Page];
        current[0] = 1;
        byte[] output = new byte[Page];
        Assert.Equal(3, XbzrleEncoding.Encode(previous, current, output, Page));
        Assert.Equal(new byte[] { 0, 1, 1 }, output[..3]);

        current[0] = 0;
        current[200] = 7;
        Assert.Equal(4, XbzrleEncoding.Encode(previous, current, output, Page));
        Assert.Equal(new byte[] { 0xC8, 0x01, 1, 7 }, output[..4]);
    }

    [Fact]
    public void ShortUnchangedGapsStayInsideTheChangedRun()
    {
        byte[] previous = new byte[Page];
        byte[] current = new byte[Page];
        current[10] = 1;
        current[12] = 2; // one unchanged byte between: cheaper as part of the run than as a new pair
        byte[] output = new byte[Page];
        int length = XbzrleEncoding.Encode(previous, current, output, Page);
        Assert.Equal(new byte[] { 10, 3, 1, 0, 2 }, output[..length]);
    }

    [Theory]
    [InlineData(new byte[] { 0x80 }, "a varint cut off at the end of the delta")]
    [InlineData(new byte[] { 0x80, 0x80, 0x01 }, "a varint longer than 2 bytes")]
    [InlineData(new byte[] { 0x81, 0x00, 1, 9 }, "an overlong varint (a redundant zero byte)")]
    [InlineData(new byte[] { 5 }, "an unchanged run without its changed run")]
    [InlineData(new byte[] { 0, 0 }, "a changed run of 0 bytes")]
    [InlineData(new byte[] { 0, 1, 9, 0, 1, 9 }, "an unchanged run of 0 bytes after the first pair")]
    [InlineData(new byte[] { 0x80, 0x20, 1, 9 }, "a run past the end of the page (at byte 0: 4096 unchanged, 1 changed)")]
    [InlineData(new byte[] { 0xFF, 0x1F, 0x81, 0x00 }, "an overlong varint")]
    [InlineData(new byte[] { 0xFF, 0x1F, 0x02, 1, 2 }, "a run past the end of the page (at byte 0: 4095 unchanged, 2 changed)")]
    [InlineData(new byte[] { 0, 4, 1, 2, 3 }, "4 changed bytes announced, 3 present")]
    [InlineData(new byte[] { 0, 0x81, 0x20, 1 }, "a run past the end of the page (at byte 0: 0 unchanged, 4097 changed)")]
    public void AMalformedDeltaIsACorruptStream(byte[] delta, string expected)
    {
        byte[] page = new byte[Page];
        var error = Assert.Throws<MigrationStreamException>(() => XbzrleEncoding.Apply(delta, page));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void TheLastByteOfThePageCanChange()
    {
        byte[] page = new byte[Page];
        XbzrleEncoding.Apply([0xFF, 0x1F, 0x01, 0x5A], page);
        Assert.Equal(0x5A, page[^1]);
        Assert.Equal(1, page.Count(b => b != 0));
    }
}
