using Vmm.Configuration;
using Vmm.Accelerator;
using Vmm.Ram;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests.Ram;

/// <summary>
/// The lossless dirty log (DESIGN §4, seeds/004): while the guest writes pages, a resizable block is grown and
/// shrunk and MMIO holes are punched and removed; every page the guest wrote must come out of the log as dirty.
/// </summary>
/// <remarks>
/// Each round, with the vCPUs parked: sync and clear the log, and snapshot the first byte of every page (the
/// baseline). Let the ram-top guest run (it increments the first byte of every page below the top it probes, and
/// follows the layout as it changes). Park it, apply one memslot change — the deleted slots still hold the only record
/// of those writes, which Memslots must harvest into the block's bitmap before deleting them — then sync. Any page
/// whose first byte moved since the baseline was written by the guest, so its bit must be set. A missing bit is a lost
/// dirty page: a migration would leave that page stale on the destination.
/// </remarks>
[Collection(RamCollection.Name)]
public class DirtyLogAcrossMemslotChangesTests
{
    private const ulong MiB = RamCollection.MiB;
    private const int Rounds = 30;

    private enum Change
    {
        GrowExtra,
        HoleInExtra,
        RemoveHoleInExtra,
        ShrinkExtra,
        HoleInPcRam,
        RemoveHoleInPcRam,
    }

    [Theory]
    [InlineData(RamBackend.Anonymous)]
    [InlineData(RamBackend.Shared)]
    [InlineData(RamBackend.Hugetlbfs)]
    public void NoWrittenPageIsLostWhenSlotsChangeUnderARunningGuest(RamBackend backend)
    {
        using RamMachine m = RamMachine.Create("ram-top", backend, 16 * MiB, new RamBlockOption("extra", 16 * MiB, 8 * MiB, 16 * MiB, backend));
        IGuestMemoryMap memslots = m.Machine.MemoryMap;
        RamBlock pcRam = m.PcRam;
        RamBlock extra = m.Block("extra");
        RamBlock[] blocks = [pcRam, extra];
        memslots.StartDirtyLogging();
        m.Machine.Start();
        WaitForLines(m, 0, 2);

        var random = new Random(1234);
        var lost = new List<string>();
        var lostByChange = new Dictionary<Change, long>();
        long writtenPages = 0;
        for (int round = 0; round < Rounds; round++)
        {
            Change change = (Change)(round % Enum.GetValues<Change>().Length);
            RamBlock target = change is Change.HoleInPcRam or Change.RemoveHoleInPcRam ? pcRam : extra;

            m.Machine.Stop();
            memslots.SyncDirtyLog();
            var baselines = new Dictionary<RamBlock, byte[]>();
            foreach (RamBlock block in blocks)
            {
                block.DirtyBitmap.ClearAll();
                baselines[block] = RamMachine.FirstBytes(block, 0, block.UsedLength);
            }

            // At least one whole pass after the baseline, then stop somewhere inside the next one.
            int mark = m.Serial.Text.Length;
            m.Machine.Continue();
            WaitForLines(m, mark, 3);
            Thread.Sleep(random.Next(0, 12));
            m.Machine.Stop();

            Apply(m, change);
            memslots.SyncDirtyLog();

            int changedInTarget = 0;
            foreach (RamBlock block in blocks)
            {
                byte[] baseline = baselines[block];
                ulong pages = Math.Min((ulong)baseline.Length, block.UsedLength / RamMachine.Page);
                byte[] now = RamMachine.FirstBytes(block, 0, pages * RamMachine.Page);
                for (ulong page = 0; page < pages; page++)
                {
                    if (now[page] == baseline[page])
                    {
                        continue;
                    }

                    writtenPages++;
                    changedInTarget += block == target ? 1 : 0;
                    if (!block.DirtyBitmap.IsSet(page))
                    {
                        lostByChange[change] = lostByChange.GetValueOrDefault(change) + 1;
                        if (lost.Count < 10)
                        {
                            lost.Add($"round {round} ({change}): {block.Name} page 0x{page * RamMachine.Page:x} went {baseline[page]} -> {now[page]} but is not dirty");
                        }
                    }
                }
            }

            // The round means something only if the guest wrote the block whose slots changed.
            Assert.True(changedInTarget > 0, $"round {round} ({change}): the guest wrote nothing in {target.Name}; serial: {RamMachine.Tail(m.Serial.Text)}");
            m.Machine.Continue();
        }

        Assert.True(
            lostByChange.Count == 0,
            $"written pages without a dirty bit, by change: {string.Join(", ", lostByChange.Select(kv => $"{kv.Key} {kv.Value}"))} " +
            $"(of {writtenPages} written pages checked in {Rounds} rounds); first ones:\n{string.Join("\n", lost)}");
        Assert.False(m.Machine.Exited.IsCompleted);
    }

    private static void Apply(RamMachine m, Change change)
    {
        switch (change)
        {
            case Change.GrowExtra:
                m.Machine.ResizeRamBlock("extra", 16 * MiB);
                break;
            case Change.HoleInExtra:
                m.Machine.AddMmioHole("extra", 2 * MiB, 2 * MiB);
                break;
            case Change.RemoveHoleInExtra:
                m.Machine.RemoveMmioHole("extra", 2 * MiB);
                break;
            case Change.ShrinkExtra:
                m.Machine.ResizeRamBlock("extra", 8 * MiB);
                break;
            case Change.HoleInPcRam:
                m.Machine.AddMmioHole("pc.ram", 8 * MiB, 2 * MiB);
                break;
            case Change.RemoveHoleInPcRam:
                m.Machine.RemoveMmioHole("pc.ram", 8 * MiB);
                break;
        }
    }

    private static void WaitForLines(RamMachine m, int mark, int count) =>
        m.WaitForSerial(text => RamMachine.LinesSince(text, mark).Length >= count, $"{count} more passes of ram-top");
}
