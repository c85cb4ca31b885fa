using Iced.Intel;

namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// The initial state of one case: the eight general registers, EFLAGS, the three data segment registers and the
/// initial contents of the data area. Registers are addressed by Iced's <see cref="Register"/> names, so AH or SI
/// write only their part of the 32-bit register.
/// </summary>
public sealed class CaseState
{
    private readonly uint[] _registers = new uint[8];

    public uint Eflags { get; set; } = EFlags.Reserved1;

    public ushort Ds { get; set; } = MemoryMap.DataSegment;

    public ushort Es { get; set; } = MemoryMap.DataSegment;

    public ushort Ss { get; set; }

    /// <summary>Initial data area contents; the image builder pads it (with a fixed pattern) to the batch's data length.</summary>
    public byte[] Data { get; set; } = [];

    public uint this[Gpr register]
    {
        get => _registers[(int)register];
        set => _registers[(int)register] = value;
    }

    /// <summary>The value of a general register of any size (AL, AH, AX, EAX, …).</summary>
    public uint Get(Register register)
    {
        var (gpr, shift, mask) = Locate(register);
        return (_registers[(int)gpr] >> shift) & mask;
    }

    /// <summary>Sets a general register of any size, leaving the other bits of its 32-bit register as they are.</summary>
    public void Set(Register register, ulong value)
    {
        var (gpr, shift, mask) = Locate(register);
        var full = _registers[(int)gpr];
        _registers[(int)gpr] = (full & ~(mask << shift)) | (((uint)value & mask) << shift);
    }

    /// <summary>Sets or clears flags in <paramref name="flags"/>.</summary>
    public void SetFlags(uint flags, bool on) => Eflags = on ? Eflags | flags : Eflags & ~flags;

    /// <summary>Puts <paramref name="bytes"/> at <paramref name="offset"/> of the data area, growing it as needed.</summary>
    public void WriteData(int offset, ReadOnlySpan<byte> bytes)
    {
        if (Data.Length < offset + bytes.Length)
        {
            var grown = new byte[offset + bytes.Length];
            Data.CopyTo(grown, 0);
            Data = grown;
        }

        bytes.CopyTo(Data.AsSpan(offset));
    }

    /// <summary>Stores a little-endian value of <paramref name="size"/> bytes at <paramref name="offset"/> of the data area.</summary>
    public void WriteData(int offset, ulong value, int size)
    {
        Span<byte> bytes = stackalloc byte[size];
        for (var i = 0; i < size; i++)
        {
            bytes[i] = (byte)(value >> (8 * i));
        }

        WriteData(offset, bytes);
    }

    public CaseState Clone()
    {
        var copy = new CaseState { Eflags = Eflags, Ds = Ds, Es = Es, Ss = Ss, Data = (byte[])Data.Clone() };
        _registers.CopyTo(copy._registers, 0);
        return copy;
    }

    private static (Gpr Gpr, int Shift, uint Mask) Locate(Register register)
    {
        if (register >= Register.AL && register <= Register.BL)
        {
            return ((Gpr)(register - Register.AL), 0, 0xFF);
        }

        if (register >= Register.AH && register <= Register.BH)
        {
            return ((Gpr)(register - Register.AH), 8, 0xFF);
        }

        if (register >= Register.AX && register <= Register.DI)
        {
            return ((Gpr)(register - Register.AX), 0, 0xFFFF);
        }

        if (register >= Register.EAX && register <= Register.EDI)
        {
            return ((Gpr)(register - Register.EAX), 0, 0xFFFF_FFFF);
        }

        throw new ArgumentException($"{register} is not a general register", nameof(register));
    }
}
