using System.Numerics;
using System.Runtime.CompilerServices;

namespace Vmm.Ram;

/// <summary>
/// One bit per 4 KiB page — KVM's dirty-log granularity, whatever the block's host page size. Every operation on a
/// single bit or word is atomic (Interlocked on 64-bit words), so vCPU-side harvesting, the migration sender and the
/// fault thread can share one bitmap without a lock. Bulk operations are atomic per word, not as a whole.
/// </summary>
public sealed class DirtyBitmap
{
    /// <summary>The bytes one bit stands for.</summary>
    public const ulong PageSize = 4096;

    private const int BitsPerWord = 64;

    private readonly ulong[] words;

    public DirtyBitmap(ulong pageCount)
    {
        PageCount = pageCount;
        words = new ulong[(pageCount + BitsPerWord - 1) / BitsPerWord];
    }

    /// <summary>How many pages (bits) the bitmap covers.</summary>
    public ulong PageCount { get; }

    /// <summary>How many 64-bit words back the bitmap.</summary>
    public int WordCount => words.Length;

    public void Set(ulong page)
    {
        CheckPage(page);
        Interlocked.Or(ref words[page / BitsPerWord], Bit(page));
    }

    /// <summary>Sets the bit and says whether it was already set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public bool TestAndSet(ulong page)
    {
        CheckPage(page);
        ulong bit = Bit(page);
        return (Interlocked.Or(ref words[page / BitsPerWord], bit) & bit) != 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public bool IsSet(ulong page)
    {
        CheckPage(page);
        return (Volatile.Read(ref words[page / BitsPerWord]) & Bit(page)) != 0;
    }

    /// <summary>Clears the bit and says whether it was set: exactly one of several racing callers sees true.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public bool TestAndClear(ulong page)
    {
        CheckPage(page);
        ulong bit = Bit(page);
        return (Interlocked.And(ref words[page / BitsPerWord], ~bit) & bit) != 0;
    }

    public void Clear(ulong page) => TestAndClear(page);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public void SetRange(ulong firstPage, ulong pageCount)
    {
        CheckRange(firstPage, pageCount);
        for (ulong word = firstPage / BitsPerWord; pageCount != 0 && word <= (firstPage + pageCount - 1) / BitsPerWord; word++)
        {
            Interlocked.Or(ref words[word], RangeMask(word, firstPage, firstPage + pageCount));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public void ClearRange(ulong firstPage, ulong pageCount)
    {
        CheckRange(firstPage, pageCount);
        for (ulong word = firstPage / BitsPerWord; pageCount != 0 && word <= (firstPage + pageCount - 1) / BitsPerWord; word++)
        {
            Interlocked.And(ref words[word], ~RangeMask(word, firstPage, firstPage + pageCount));
        }
    }

    /// <summary>
    /// ORs in a KVM-style bitmap: bit i of <paramref name="source"/> (little-endian 64-bit words) is page
    /// <paramref name="firstPage"/> + i, for i &lt; <paramref name="pageCount"/>. <paramref name="firstPage"/> need
    /// not be a multiple of 64 — a memslot can start anywhere in a block. Bits beyond pageCount are ignored.
    /// </summary>
    public void MergeWords(ulong firstPage, ReadOnlySpan<ulong> source, ulong pageCount)
    {
        CheckRange(firstPage, pageCount);
        ulong sourceWords = (pageCount + BitsPerWord - 1) / BitsPerWord;
        if ((ulong)source.Length < sourceWords)
        {
            throw new ArgumentException($"{pageCount} pages need {sourceWords} words, got {source.Length}", nameof(source));
        }

        int shift = (int)(firstPage % BitsPerWord);
        ulong target = firstPage / BitsPerWord;
        int tailBits = (int)(pageCount % BitsPerWord);
        for (ulong i = 0; i < sourceWords; i++)
        {
            ulong bits = source[(int)i];
            if (i == sourceWords - 1 && tailBits != 0)
            {
                bits &= (1ul << tailBits) - 1;
            }

            if (bits == 0)
            {
                continue;
            }

            Interlocked.Or(ref words[target + i], bits << shift);

            // The high bits that shifted out land in the next word; they exist only if those pages are in range.
            ulong carried = shift == 0 ? 0 : bits >> (BitsPerWord - shift);
            if (carried != 0)
            {
                Interlocked.Or(ref words[target + i + 1], carried);
            }
        }
    }

    public ulong CountSet()
    {
        ulong count = 0;
        for (int i = 0; i < words.Length; i++)
        {
            count += (ulong)BitOperations.PopCount(Volatile.Read(ref words[i]));
        }

        return count;
    }

    public void ClearAll()
    {
        for (int i = 0; i < words.Length; i++)
        {
            Volatile.Write(ref words[i], 0);
        }
    }

    /// <summary>
    /// Atomically (per word) moves every set bit into a new bitmap and clears it here: a bit set concurrently is
    /// either in the result or still here, never lost.
    /// </summary>
    public DirtyBitmap TakeAll()
    {
        var taken = new DirtyBitmap(PageCount);
        for (int i = 0; i < words.Length; i++)
        {
            if (Volatile.Read(ref words[i]) != 0)
            {
                taken.words[i] = Interlocked.Exchange(ref words[i], 0);
            }
        }

        return taken;
    }

    /// <summary>
    /// A new bitmap of the bits set here and not in <paramref name="mask"/> (a snapshot: atomic per word, not as a
    /// whole), over the pages this bitmap covers. With <c>null</c>, a copy.
    /// </summary>
    public DirtyBitmap Except(DirtyBitmap? mask)
    {
        var result = new DirtyBitmap(PageCount);
        int masked = mask is null ? 0 : Math.Min(words.Length, mask.words.Length);
        for (int i = 0; i < words.Length; i++)
        {
            ulong bits = Volatile.Read(ref words[i]);
            result.words[i] = i < masked ? bits & ~Volatile.Read(ref mask!.words[i]) : bits;
        }

        return result;
    }

    /// <summary>
    /// Clears here every bit that is set in <paramref name="mask"/> (word by word, atomically per word), over the
    /// pages both bitmaps cover.
    /// </summary>
    public void ClearWhereSet(DirtyBitmap mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        int count = Math.Min(words.Length, mask.words.Length);
        for (int i = 0; i < count; i++)
        {
            ulong bits = Volatile.Read(ref mask.words[i]);
            if (bits != 0 && (Volatile.Read(ref words[i]) & bits) != 0)
            {
                Interlocked.And(ref words[i], ~bits);
            }
        }
    }

    /// <summary>The first set page at or after <paramref name="fromPage"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public bool TryFindNextSet(ulong fromPage, out ulong page)
    {
        page = 0;
        if (fromPage >= PageCount)
        {
            return false;
        }

        ulong word = fromPage / BitsPerWord;
        ulong bits = Volatile.Read(ref words[word]) & (ulong.MaxValue << (int)(fromPage % BitsPerWord));
        while (bits == 0)
        {
            if (++word >= (ulong)words.Length)
            {
                return false;
            }

            bits = Volatile.Read(ref words[word]);
        }

        page = (word * BitsPerWord) + (ulong)BitOperations.TrailingZeroCount(bits);
        return page < PageCount;
    }

    /// <summary>The set pages in ascending order, without allocating: <c>foreach (ulong page in bitmap.SetPages())</c>.</summary>
    public SetPageEnumerator SetPages() => new(this);

    private static ulong Bit(ulong page) => 1ul << (int)(page % BitsPerWord);

    /// <summary>The bits of word <paramref name="word"/> that fall in [first, end).</summary>
    private static ulong RangeMask(ulong word, ulong first, ulong end)
    {
        ulong wordStart = word * BitsPerWord;
        int low = (int)(Math.Max(first, wordStart) - wordStart);
        int high = (int)(Math.Min(end, wordStart + BitsPerWord) - wordStart);
        ulong upTo = high == BitsPerWord ? ulong.MaxValue : (1ul << high) - 1;
        return upTo & ~((1ul << low) - 1);
    }

    private void CheckPage(ulong page)
    {
        if (page >= PageCount)
        {
            throw new ArgumentOutOfRangeException(nameof(page), page, $"the bitmap covers {PageCount} pages");
        }
    }

    private void CheckRange(ulong firstPage, ulong pageCount)
    {
        if (firstPage > PageCount || pageCount > PageCount - firstPage)
        {
            throw new ArgumentOutOfRangeException(nameof(firstPage), $"pages [{firstPage}, +{pageCount}) exceed the bitmap's {PageCount} pages");
        }
    }

    /// <summary>Walks the set bits word by word; bits set behind the cursor during the walk are not seen.</summary>
    public struct SetPageEnumerator
    {
        private readonly DirtyBitmap bitmap;
        private long wordIndex;
        private ulong remaining;

        internal SetPageEnumerator(DirtyBitmap bitmap)
        {
            this.bitmap = bitmap;
            wordIndex = -1;
            remaining = 0;
            Current = 0;
        }

        public ulong Current { get; private set; }

        public readonly SetPageEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            while (remaining == 0)
            {
                if (++wordIndex >= bitmap.words.Length)
                {
                    return false;
                }

                remaining = Volatile.Read(ref bitmap.words[wordIndex]);
            }

            Current = ((ulong)wordIndex * BitsPerWord) + (ulong)BitOperations.TrailingZeroCount(remaining);
            remaining &= remaining - 1;
            return true;
        }
    }
}
