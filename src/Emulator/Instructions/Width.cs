using System.Runtime.CompilerServices;
using Vmm.Emulator.Processor;

namespace Vmm.Emulator.Instructions;

/// <summary>
/// An operand width as a type: handlers are generic over it (<c>Binary&lt;Add, W16, Reg0, Mem&gt;</c>), so the JIT
/// compiles each form with its width folded in and no width test runs at execution time.
/// </summary>
public interface IWidth
{
    static abstract int Size { get; }

    static abstract uint Mask { get; }

    static abstract uint SignBit { get; }

    /// <summary>Added to the 8-bit member of a <see cref="FlagOp"/> triple: 0, 1 or 2.</summary>
    static abstract byte FlagOffset { get; }

    /// <summary>A register of this width: for 8 bits <paramref name="r"/> is a byte offset (<see cref="RegisterIndex.ByteOffset"/>).</summary>
    static abstract uint GetReg(Cpu cpu, int r);

    static abstract void SetReg(Cpu cpu, int r, uint value);

    static abstract uint Read(Cpu cpu, int seg, uint offset);

    static abstract void Write(Cpu cpu, int seg, uint offset, uint value);

    /// <summary>Sign-extends a value of this width to 32 bits.</summary>
    static abstract uint SignExtend(uint value);
}

public readonly unsafe struct W8 : IWidth
{
    public static int Size => 1;

    public static uint Mask => 0xFF;

    public static uint SignBit => 0x80;

    public static byte FlagOffset => 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint GetReg(Cpu cpu, int r) => ((byte*)cpu.Regs)[r];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetReg(Cpu cpu, int r, uint value) => ((byte*)cpu.Regs)[r] = (byte)value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Read(Cpu cpu, int seg, uint offset) => cpu.Read8(seg, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write(Cpu cpu, int seg, uint offset, uint value) => cpu.Write8(seg, offset, (byte)value);

    public static uint SignExtend(uint value) => (uint)(sbyte)value;
}

public readonly unsafe struct W16 : IWidth
{
    public static int Size => 2;

    public static uint Mask => 0xFFFF;

    public static uint SignBit => 0x8000;

    public static byte FlagOffset => 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint GetReg(Cpu cpu, int r) => *(ushort*)(cpu.Regs + r);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetReg(Cpu cpu, int r, uint value) => *(ushort*)(cpu.Regs + r) = (ushort)value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Read(Cpu cpu, int seg, uint offset) => cpu.Read16(seg, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write(Cpu cpu, int seg, uint offset, uint value) => cpu.Write16(seg, offset, (ushort)value);

    public static uint SignExtend(uint value) => (uint)(short)value;
}

public readonly unsafe struct W32 : IWidth
{
    public static int Size => 4;

    public static uint Mask => 0xFFFF_FFFF;

    public static uint SignBit => 0x8000_0000;

    public static byte FlagOffset => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint GetReg(Cpu cpu, int r) => cpu.Regs[r];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetReg(Cpu cpu, int r, uint value) => cpu.Regs[r] = value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Read(Cpu cpu, int seg, uint offset) => cpu.Read32(seg, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write(Cpu cpu, int seg, uint offset, uint value) => cpu.Write32(seg, offset, value);

    public static uint SignExtend(uint value) => value;
}
