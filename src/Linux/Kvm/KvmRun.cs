using System.Runtime.InteropServices;

namespace Vmm.Linux.Kvm;

/// <summary>
/// The head of struct kvm_run, the page shared with the kernel through the vCPU mmap. Only the fields the VMM
/// reads are declared; the exit union starts at <see cref="ExitUnionOffset"/> and is read through the typed views below.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 304)]
public struct KvmRun
{
    public const int ExitUnionOffset = 32;

    public const byte IoDirectionIn = 0;
    public const byte IoDirectionOut = 1;

    [FieldOffset(0)] public byte RequestInterruptWindow;
    [FieldOffset(1)] public byte ImmediateExit;
    [FieldOffset(8)] public KvmExitReason ExitReason;
    [FieldOffset(12)] public byte ReadyForInterruptInjection;
    [FieldOffset(13)] public byte IfFlag;
    [FieldOffset(14)] public ushort Flags;
    [FieldOffset(16)] public ulong Cr8;
    [FieldOffset(24)] public ulong ApicBase;
    [FieldOffset(32)] public KvmRunIo Io;
    [FieldOffset(32)] public KvmRunMmio Mmio;
    [FieldOffset(32)] public KvmRunFailEntry FailEntry;
    [FieldOffset(32)] public KvmRunInternal Internal;
    [FieldOffset(32)] public KvmRunDebug Debug;
    [FieldOffset(288)] public ulong KvmValidRegs;
    [FieldOffset(296)] public ulong KvmDirtyRegs;
}

/// <summary>kvm_run.io: the data lives at (kvm_run + DataOffset), Count items of Size bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmRunIo
{
    public byte Direction;
    public byte Size;
    public ushort Port;
    public uint Count;
    public ulong DataOffset;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct KvmRunMmio
{
    public ulong PhysAddr;
    public fixed byte Data[8];
    public uint Len;
    public byte IsWrite;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmRunFailEntry
{
    public ulong HardwareEntryFailureReason;
    public uint Cpu;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct KvmRunInternal
{
    public uint Suberror;
    public uint NData;
    public fixed ulong Data[16];
}

/// <summary>kvm_debug_exit_arch (x86).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmRunDebug
{
    public uint Exception;
    public uint Pad;
    public ulong Pc;
    public ulong Dr6;
    public ulong Dr7;
}
