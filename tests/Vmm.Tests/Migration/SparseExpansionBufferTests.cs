using CsCheck;
using Vmm.Migration.Stream;

namespace Vmm.Tests.Migration;

/// <summary>
/// The buffer postcopy expands sparse records into is reused without being cleared whole: every expansion must still
/// hand out exactly its record's pages, after any earlier record, reset or not, failed or not.
/// </summary>
public sealed class SparseExpansionBufferTests
{
    private const int Page = SparsePageEncoding.PageSize;

    /// <summary>Mostly-zero pages: a few stretches of bytes anywhere, or none.</summary>
    private static readonly Gen<byte[]> SparsePages =
        Gen.Select(Gen.Int[0, Page - 1], Gen.Int[1, 48], Gen.Byte[1, 255]).Array[0, 6].Select(stretches =>
        {
            byte[] page = new byte[Page];
            foreach ((int position, int length, byte value) in stretches)
            {
                page.AsSpan(position, Math.Min(length, Page - position)).Fill(value);
            }

            return page;
        });

    /// <summary>What one step does: expand a record of these pages, then reset or not; or feed it a malformed record.</summary>
    private static readonly Gen<(byte[][] Pages, bool Reset, bool Malformed)> Steps =
        Gen.Select(SparsePages.Array[1, SparsePageEncoding.MaxRecordPages], Gen.Bool, Gen.Int[0, 9].Select(n => n == 0));

    [Fact]
    public void EveryExpansionIsExactlyItsRecordWhateverCameBefore()
    {
        Steps.Array[1, 12].Sample(
            steps =>
            {
                var buffer = new SparseExpansionBuffer();
                foreach ((byte[][] pages, bool reset, bool malformed) in steps)
                {
                    byte[] encoded = Encode(pages);
                    if (malformed)
                    {
                        // A record that ends with a page cut short: refused, with part of it already written.
                        Assert.Throws<MigrationStreamException>(() => buffer.Expand(encoded.AsSpan(0, encoded.Length - 1), (ulong)pages.Length));
                        Assert.True(buffer.Pages.IsEmpty);
                        continue;
                    }

                    ReadOnlySpan<byte> expanded = buffer.Expand(encoded, (ulong)pages.Length);
                    Assert.Equal(pages.Length * Page, expanded.Length);
                    for (int i = 0; i < pages.Length; i++)
                    {
                        Assert.True(expanded.Slice(i * Page, Page).SequenceEqual(pages[i]), $"page {i} of {pages.Length}");
                    }

                    if (reset)
                    {
                        buffer.Reset();
                        Assert.True(buffer.Pages.IsEmpty);
                    }
                }
            },
            iter: 300);
    }

    [Fact]
    public void ARecordOfNoPagesOrTooManyIsRefused()
    {
        var buffer = new SparseExpansionBuffer();
        Assert.Throws<MigrationStreamException>(() => buffer.Expand([], 0));
        Assert.Throws<MigrationStreamException>(() => buffer.Expand(new byte[2 * (SparsePageEncoding.MaxRecordPages + 1)], SparsePageEncoding.MaxRecordPages + 1));
    }

    /// <summary>A sparse record's data: per page a u16 length and its zero-run encoding.</summary>
    private static byte[] Encode(byte[][] pages)
    {
        var data = new List<byte>();
        byte[] encoding = new byte[Page * 2];
        foreach (byte[] page in pages)
        {
            int length = SparsePageEncoding.Encode(page, encoding, encoding.Length);
            data.Add((byte)length);
            data.Add((byte)(length >> 8));
            data.AddRange(encoding.AsSpan(0, length).ToArray());
        }

        return [.. data];
    }
}
