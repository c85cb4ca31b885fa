using System.Buffers.Binary;
using CsCheck;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// Sparse pages: the zero-run encoding is the XBZRLE delta against a zero page, byte for byte; what the encoder writes
/// decodes back into the page; the encoder keeps to its limit and gives up on dense pages; a sparse record a hostile
/// peer makes up is refused and never written past its pages.
/// </summary>
public sealed class SparsePageEncodingTests
{
    private const int Page = SparsePageEncoding.PageSize;

    private static readonly byte[] ZeroPage = new byte[Page];

    /// <summary>Pages of every kind: zeros with a few stretches of bytes, dense, all zeros, no zero at all.</summary>
    private static readonly Gen<byte[]> Pages = Gen.OneOf(
        Gen.Select(Gen.Int[0, Page - 1], Gen.OneOf(Gen.Int[1, 4], Gen.Int[1, 64], Gen.Int[1, Page]), Gen.Byte).Array[0, 40].Select(Stretches),
        Gen.Byte.Array[Page],
        Gen.Byte[0, 2].Array[Page],
        Gen.Const(0).Select(_ => new byte[Page]),
        Gen.Byte[1, 255].Array[Page]);

    private static byte[] Stretches((int Position, int Length, byte Seed)[] stretches)
    {
        byte[] page = new byte[Page];
        foreach ((int position, int length, byte seed) in stretches)
        {
            for (int i = position; i < Math.Min(Page, position + length); i++)
            {
                page[i] = (byte)(seed + i);
            }
        }

        return page;
    }

    [Fact]
    public void WhatTheEncoderWritesDecodesBackIntoThePage()
    {
        Pages.Sample(
            page =>
            {
                byte[] output = new byte[Page * 2];
                int length = SparsePageEncoding.Encode(page, output, output.Length);
                Assert.True(length >= 0, "with room for any encoding the encoder never gives up");
                byte[] decoded = new byte[Page];
                Random.Shared.NextBytes(decoded);
                SparsePageEncoding.Decode(output.AsSpan(0, length), decoded);
                Assert.Equal(page, decoded);
                Assert.Equal(!page.AsSpan().ContainsAnyExcept((byte)0), length == 0);
            },
            iter: 3000);
    }

    [Fact]
    public void TheEncodingIsTheXbzrleDeltaAgainstAZeroPageOrBothGiveUp()
    {
        Gen.Select(Pages, Gen.OneOf(Gen.Int[0, Page], Gen.Const(SparsePageEncoding.Limit), Gen.Const(Page * 2))).Sample(
            (page, limit) =>
            {
                byte[] sparse = new byte[Page * 2];
                byte[] delta = new byte[Page * 2];
                int sparseLength = SparsePageEncoding.Encode(page, sparse, limit);
                int deltaLength = XbzrleEncoding.Encode(ZeroPage, page, delta, limit);
                Assert.Equal(deltaLength, sparseLength);
                if (sparseLength >= 0)
                {
                    Assert.True(sparseLength <= limit);
                    Assert.Equal(delta.AsSpan(0, deltaLength).ToArray(), sparse.AsSpan(0, sparseLength).ToArray());
                }
            },
            iter: 3000);
    }

    [Fact]
    public void OneCounterBytePerPageIsThreeBytes()
    {
        byte[] page = new byte[Page];
        page[0] = 42;
        byte[] output = new byte[16];
        Assert.Equal(3, SparsePageEncoding.Encode(page, output, SparsePageEncoding.Limit));
        Assert.Equal(new byte[] { 0, 1, 42 }, output[..3]);

        Array.Clear(page);
        page[^1] = 7;
        Assert.Equal(4, SparsePageEncoding.Encode(page, output, SparsePageEncoding.Limit));
        Assert.Equal(new byte[] { 0xFF, 0x1F, 1, 7 }, output[..4]);
    }

    [Fact]
    public void APageWithoutZerosIsGivenUpAtTheLimit()
    {
        byte[] page = new byte[Page];
        Array.Fill(page, (byte)0xA5);
        Assert.Equal(-1, SparsePageEncoding.Encode(page, new byte[Page * 2], SparsePageEncoding.Limit));
        Assert.Equal(-1, SparsePageEncoding.Encode(page, new byte[Page * 2], Page));
        Assert.Equal(Page + 3, SparsePageEncoding.Encode(page, new byte[Page * 2], Page * 2));
    }

    [Fact]
    public void AllZerosIsAnEmptyEncoding()
    {
        Assert.Equal(0, SparsePageEncoding.Encode(new byte[Page], new byte[8], SparsePageEncoding.Limit));
        byte[] page = new byte[Page];
        Random.Shared.NextBytes(page);
        SparsePageEncoding.Decode([], page);
        Assert.All(page, b => Assert.Equal(0, b));
    }

    /// <summary>Any bytes as a record's data: expanded within its pages, or refused as a corrupt stream; never anything else.</summary>
    [Fact]
    public void AnyRecordDataIsExpandedWithinItsPagesOrRefused()
    {
        Gen.Select(Gen.Byte.Array[0, 80], Gen.Int[1, 3]).Sample(
            (data, pages) =>
            {
                byte[] memory = new byte[Page * 6];
                Span<byte> output = memory.AsSpan(Page, Page * 4);
                try
                {
                    ReadOnlySpan<byte> expanded = SparsePageEncoding.Expand(data, (ulong)pages, output);
                    Assert.Equal(pages * Page, expanded.Length);
                }
                catch (MigrationStreamException e)
                {
                    Assert.StartsWith("corrupt migration stream: ", e.Message);
                }

                Assert.All(memory.AsSpan(0, Page).ToArray(), b => Assert.Equal(0, b));
                Assert.All(memory.AsSpan((1 + pages) * Page).ToArray(), b => Assert.Equal(0, b));
            },
            iter: 5000);
    }

    [Theory]
    [InlineData(new byte[] { 3, 0, 0, 1 }, 1, "the encodings of a sparse Page record end before its 1 pages do")]
    [InlineData(new byte[] { 0, 0 }, 2, "the encodings of a sparse Page record end before its 2 pages do")]
    [InlineData(new byte[] { 0 }, 1, "the encodings of a sparse Page record end before its 1 pages do")]
    [InlineData(new byte[] { 0, 0, 9 }, 1, "1 unexpected trailing bytes after the encodings of a sparse Page record")]
    [InlineData(new byte[] { 2, 0, 5, 0 }, 1, "sparse page: a changed run of 0 bytes")]
    [InlineData(new byte[] { 4, 0, 0xFF, 0x1F, 0x02, 1 }, 1, "sparse page: a run past the end of the page")]
    [InlineData(new byte[] { 3, 0, 0, 4, 1 }, 1, "sparse page: 4 changed bytes announced, 1 present")]
    public void AMalformedRecordIsACorruptStream(byte[] data, int pages, string expected)
    {
        byte[] output = new byte[Page * 2];
        var error = Assert.Throws<MigrationStreamException>(() => SparsePageEncoding.Expand(data, (ulong)pages, output));
        Assert.StartsWith("corrupt migration stream: ", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void ARecordOfSeveralPagesExpandsInOrder()
    {
        byte[] data = new byte[3 * 2 + 3 + 4];
        BinaryPrimitives.WriteUInt16LittleEndian(data, 3);
        new byte[] { 0, 1, 1 }.CopyTo(data, 2);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(5), 0);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(7), 4);
        new byte[] { 0xFF, 0x1F, 1, 3 }.CopyTo(data, 9);
        byte[] output = Enumerable.Repeat((byte)0xEE, Page * 3).ToArray();

        byte[] expanded = SparsePageEncoding.Expand(data, 3, output).ToArray();

        Assert.Equal(1, expanded[0]);
        Assert.Equal(3, expanded[3 * Page - 1]);
        Assert.Equal(2, expanded.Count(b => b != 0));
    }
}
