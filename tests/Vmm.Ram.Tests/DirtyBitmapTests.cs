namespace Vmm.Ram.Tests;

/// <summary>The dirty bitmap against a plain bool[] model, and under concurrent use.</summary>
public class DirtyBitmapTests
{
    [Fact]
    public void SingleBitsSetTestAndClear()
    {
        var bitmap = new DirtyBitmap(130);

        Assert.False(bitmap.IsSet(64));
        bitmap.Set(64);
        Assert.True(bitmap.IsSet(64));
        Assert.False(bitmap.IsSet(63));
        Assert.False(bitmap.IsSet(65));
        Assert.True(bitmap.TestAndSet(64));
        Assert.False(bitmap.TestAndSet(129));
        Assert.Equal(2ul, bitmap.CountSet());
        Assert.True(bitmap.TestAndClear(64));
        Assert.False(bitmap.TestAndClear(64));
        Assert.False(bitmap.IsSet(64));
        Assert.Equal(1ul, bitmap.CountSet());
        Assert.Equal(3, bitmap.WordCount);
        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.Set(130));
        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.IsSet(ulong.MaxValue));
    }

    [Theory]
    [InlineData(0ul, 64ul)]
    [InlineData(0ul, 200ul)]
    [InlineData(1ul, 64ul)]
    [InlineData(63ul, 1ul)]
    [InlineData(63ul, 130ul)]
    [InlineData(64ul, 64ul)]
    [InlineData(65ul, 127ul)]
    [InlineData(100ul, 77ul)]
    [InlineData(191ul, 300ul)]
    public void MergeWordsOrsAKvmBitmapInAtAnyPageOffset(ulong firstPage, ulong pageCount)
    {
        const ulong total = 512;
        var random = new Random((int)(firstPage * 1000 + pageCount));
        var bitmap = new DirtyBitmap(total);
        var model = new bool[total];

        // Some bits already set, which the merge must keep.
        for (int i = 0; i < 40; i++)
        {
            ulong page = (ulong)random.NextInt64((long)total);
            bitmap.Set(page);
            model[page] = true;
        }

        // The KVM log, with garbage beyond pageCount in its last word that must be ignored.
        var source = new ulong[(pageCount + 63) / 64];
        for (int i = 0; i < source.Length; i++)
        {
            source[i] = (ulong)random.NextInt64() ^ ((ulong)random.NextInt64() << 1);
        }

        for (ulong i = 0; i < pageCount; i++)
        {
            if ((source[i / 64] >> (int)(i % 64) & 1) != 0)
            {
                model[firstPage + i] = true;
            }
        }

        bitmap.MergeWords(firstPage, source, pageCount);

        AssertMatches(model, bitmap);
    }

    [Fact]
    public void MergeWordsRejectsRangesBeyondTheBitmapOrTheSource()
    {
        var bitmap = new DirtyBitmap(100);

        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.MergeWords(90, new ulong[1], 11));
        Assert.Throws<ArgumentException>(() => bitmap.MergeWords(0, new ulong[1], 65));
        bitmap.MergeWords(36, [ulong.MaxValue], 64);
        Assert.Equal(64ul, bitmap.CountSet());
        Assert.False(bitmap.IsSet(35));
        Assert.True(bitmap.IsSet(99));
    }

    [Theory]
    [InlineData(0ul, 1ul)]
    [InlineData(3ul, 61ul)]
    [InlineData(5ul, 200ul)]
    [InlineData(64ul, 128ul)]
    [InlineData(0ul, 300ul)]
    [InlineData(299ul, 1ul)]
    [InlineData(7ul, 0ul)]
    public void SetRangeAndClearRangeTouchExactlyTheirPages(ulong firstPage, ulong pageCount)
    {
        const ulong total = 300;
        var bitmap = new DirtyBitmap(total);
        var model = new bool[total];

        bitmap.SetRange(firstPage, pageCount);
        for (ulong p = firstPage; p < firstPage + pageCount; p++)
        {
            model[p] = true;
        }

        AssertMatches(model, bitmap);

        bitmap.SetRange(0, total);
        bitmap.ClearRange(firstPage, pageCount);
        for (ulong p = 0; p < total; p++)
        {
            model[p] = p < firstPage || p >= firstPage + pageCount;
        }

        AssertMatches(model, bitmap);
    }

    [Fact]
    public void SetPagesAreEnumeratedInOrderAndFoundFromAnyStart()
    {
        var bitmap = new DirtyBitmap(1000);
        ulong[] pages = [0, 1, 63, 64, 127, 500, 999];
        foreach (ulong page in pages)
        {
            bitmap.Set(page);
        }

        var seen = new List<ulong>();
        foreach (ulong page in bitmap.SetPages())
        {
            seen.Add(page);
        }

        Assert.Equal(pages, seen);
        Assert.True(bitmap.TryFindNextSet(2, out ulong next));
        Assert.Equal(63ul, next);
        Assert.True(bitmap.TryFindNextSet(128, out next));
        Assert.Equal(500ul, next);
        Assert.True(bitmap.TryFindNextSet(999, out next));
        Assert.Equal(999ul, next);
        Assert.False(bitmap.TryFindNextSet(1000, out _));
        bitmap.Clear(999);
        Assert.False(bitmap.TryFindNextSet(501, out _));
    }

    [Fact]
    public void TakeAllReturnsTheSetBitsAndLeavesNoneBehind()
    {
        var bitmap = new DirtyBitmap(200);
        bitmap.SetRange(10, 100);
        bitmap.Set(199);

        DirtyBitmap taken = bitmap.TakeAll();

        Assert.Equal(0ul, bitmap.CountSet());
        Assert.Equal(101ul, taken.CountSet());
        Assert.Equal(200ul, taken.PageCount);
        Assert.True(taken.IsSet(10) && taken.IsSet(109) && taken.IsSet(199) && !taken.IsSet(110));
        Assert.Equal(0ul, bitmap.TakeAll().CountSet());

        bitmap.SetRange(0, 200);
        bitmap.ClearAll();
        Assert.Equal(0ul, bitmap.CountSet());
    }

    [Fact]
    public void ConcurrentSettersLoseNoBitEvenWithinOneWord()
    {
        const int threads = 4;
        const ulong total = 64 * 1024;
        var bitmap = new DirtyBitmap(total);

        // Thread t owns pages t, t+4, t+8 …: every word is written by all threads at once.
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            for (ulong page = (ulong)t; page < total; page += threads)
            {
                bitmap.Set(page);
            }
        });

        Assert.Equal(total, bitmap.CountSet());
    }

    [Fact]
    public void RacingTestAndClearHandsEachBitToExactlyOneCaller()
    {
        const ulong total = 32 * 1024;
        var bitmap = new DirtyBitmap(total);
        bitmap.SetRange(0, total);
        long claimed = 0;

        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            long mine = 0;
            for (ulong page = 0; page < total; page++)
            {
                if (bitmap.TestAndClear(page))
                {
                    mine++;
                }
            }

            Interlocked.Add(ref claimed, mine);
        });

        Assert.Equal((long)total, claimed);
        Assert.Equal(0ul, bitmap.CountSet());
    }

    [Fact]
    public async Task TakeAllRacingWithSettersLosesNothing()
    {
        const ulong total = 16 * 1024;
        var bitmap = new DirtyBitmap(total);
        var collected = new DirtyBitmap(total);
        using var stop = new CancellationTokenSource();

        var taker = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                foreach (ulong page in bitmap.TakeAll().SetPages())
                {
                    collected.Set(page);
                }
            }
        });
        for (ulong page = 0; page < total; page++)
        {
            bitmap.Set(page);
        }

        stop.Cancel();
        await taker;
        foreach (ulong page in bitmap.TakeAll().SetPages())
        {
            collected.Set(page);
        }

        Assert.Equal(total, collected.CountSet());
    }

    [Fact]
    public void ABlocksBitmapHasOneBitPerFourKilobytesEvenOnHugePages()
    {
        using RamBlock block = RamBlock.Create(Shapes.Spec(RamBackend.Hugetlbfs, resizable: true));

        Assert.Equal(block.MaxLength / 4096, block.DirtyBitmap.PageCount);
        Assert.Equal(2048ul, block.DirtyBitmap.PageCount);
    }

    private static void AssertMatches(bool[] model, DirtyBitmap bitmap)
    {
        ulong expectedCount = 0;
        for (ulong page = 0; page < (ulong)model.Length; page++)
        {
            Assert.True(model[page] == bitmap.IsSet(page), $"page {page}: expected {model[page]}");
            expectedCount += model[page] ? 1ul : 0;
        }

        Assert.Equal(expectedCount, bitmap.CountSet());
    }

    [Fact]
    public void ClearWhereSetClearsExactlyTheMaskedBitsOverTheCommonPages()
    {
        var bitmap = new DirtyBitmap(200);
        bitmap.SetRange(0, 200);
        var mask = new DirtyBitmap(130);
        mask.Set(0);
        mask.Set(63);
        mask.Set(64);
        mask.Set(129);

        bitmap.ClearWhereSet(mask);

        Assert.Equal(196ul, bitmap.CountSet());
        Assert.False(bitmap.IsSet(0));
        Assert.False(bitmap.IsSet(63));
        Assert.False(bitmap.IsSet(64));
        Assert.False(bitmap.IsSet(129));
        Assert.True(bitmap.IsSet(1));
        Assert.True(bitmap.IsSet(130));
        Assert.True(bitmap.IsSet(199));
    }

    [Fact]
    public void ExceptKeepsTheBitsNotInTheMaskAndLeavesBothAlone()
    {
        var bitmap = new DirtyBitmap(200);
        bitmap.SetRange(60, 80);
        var mask = new DirtyBitmap(130);
        mask.SetRange(0, 70);
        mask.Set(129);

        DirtyBitmap rest = bitmap.Except(mask);

        Assert.Equal(200ul, rest.PageCount);
        Assert.Equal(69ul, rest.CountSet());
        Assert.False(rest.IsSet(69));
        Assert.True(rest.IsSet(70));
        Assert.False(rest.IsSet(129));
        Assert.True(rest.IsSet(139));
        Assert.Equal(80ul, bitmap.CountSet());
        Assert.Equal(71ul, mask.CountSet());

        DirtyBitmap copy = bitmap.Except(null);
        Assert.Equal(80ul, copy.CountSet());
        bitmap.ClearAll();
        Assert.Equal(80ul, copy.CountSet());
    }
}
