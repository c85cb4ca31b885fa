using System.Diagnostics;

namespace Vmm.Emulator.Processor;

/// <summary>
/// The time-stamp counter and the other model-specific registers, and the few x87 registers an FPU probe reads. The
/// TSC counts host nanoseconds (a 1 GHz clock) from an offset, so it keeps going up across pause and migration: the
/// state carries its value, and loading the state moves the offset.
/// </summary>
public sealed partial class Cpu
{
    private static readonly double TicksToNanoseconds = 1e9 / Stopwatch.Frequency;

    private ulong tscOffset;

    /// <summary>MSRs the guest or a loaded state wrote, other than the TSC (kept so a state round-trips).</summary>
    public Dictionary<uint, ulong> Msrs { get; } = [];

    public ushort FpuControlWord = Accelerator.State.FpuState.InitialControlWord;
    public ushort FpuStatusWord;
    public byte FpuAbridgedTagWord;

    public ulong TimeStampCounter
    {
        get => tscOffset + HostNanoseconds();
        set => tscOffset = value - HostNanoseconds();
    }

    private static ulong HostNanoseconds() => (ulong)(Stopwatch.GetTimestamp() * TicksToNanoseconds);
}
