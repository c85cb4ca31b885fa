using Vmm.Migration;
using Vmm.Ram;

namespace Vmm.Fuzz;

/// <summary>
/// The smallest machine a migration can target: one 2 MiB anonymous block `pc.ram` and one resizable block `extra`,
/// no vCPU. State sections are accepted whatever they hold (the machine's own parsers have their tests); everything
/// else is a no-op. What is fuzzed is the migration's handling of the stream, not a guest.
/// </summary>
internal sealed class FakeMachine : IMigratableMachine, IDisposable
{
    public FakeMachine()
    {
        Ram.Add(RamBlock.CreateAnonymous("pc.ram", 0, 2 << 20));
        Ram.Add(RamBlock.Create(new RamBlockSpec("extra", 1ul << 32, 64 << 10, MaxSize: 256 << 10)));
    }

    public RamBlockRegistry Ram { get; } = new();

    /// <summary>
    /// As a migration source (<see cref="RecordedMigration"/>): pages of `pc.ram` the "guest" writes between two dirty
    /// log syncs, so that precopy has passes to repeat and postcopy has stale pages to discard.
    /// </summary>
    public int PagesDirtiedPerSync { get; init; }

    private ulong syncs;

    public bool StopForMigration() => true;

    public void ResumeAfterFailedMigration()
    {
    }

    public void CompleteOutgoingMigration()
    {
    }

    public void PrepareIncomingGuest()
    {
    }

    public long StartIncomingGuest() => System.Diagnostics.Stopwatch.GetTimestamp();

    public void StartDirtyLogging()
    {
    }

    public void StopDirtyLogging()
    {
    }

    public void SyncDirtyLog()
    {
        RamBlock ram = Ram.FindByName("pc.ram")!;
        syncs++;
        for (ulong i = 0; i < (ulong)PagesDirtiedPerSync; i++)
        {
            ulong page = 16 + (((syncs * 7) + i) % 64);
            ram.GetSpan(page * 4096, 8).Fill((byte)syncs);
            ram.DirtyBitmap.Set(page);
        }
    }

    public IReadOnlyList<StateSection> SaveState() => [new StateSection("cpu0", 1, new byte[64])];

    public void LoadState(IReadOnlyList<StateSection> sections)
    {
    }

    public void PrepareStateTransfer(Action<string> report)
    {
    }

    public IReadOnlyList<ulong> FirstTouchAddresses(IReadOnlyList<StateSection> saved) => [];

    public void ResizeRamBlock(string name, ulong usedLength) => Ram.Resize(Ram.FindByName(name)!, usedLength);

    public void Dispose() => Ram.Dispose();
}
