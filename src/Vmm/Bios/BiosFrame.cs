using System.Buffers.Binary;

namespace Vmm.Bios;

/// <summary>
/// The caller's registers as a service stub leaves them on the stack: PUSH DS, PUSH ES, PUSHAD below the IRET frame
/// (IP, CS, FLAGS). A service reads and changes this copy; the stub pops it and IRETs, so the same C# serves KVM and
/// the software CPU without reading or setting vCPU registers.
/// </summary>
public sealed class BiosFrame
{
    public const int Size = 42;
    public const ushort CarryFlag = 0x0001;
    public const ushort ZeroFlag = 0x0040;
    public const ushort InterruptFlag = 0x0200;

    public uint Edi, Esi, Ebp, Ebx, Edx, Ecx, Eax;
    public ushort Es, Ds, Ip, Cs, Flags;

    public byte AL { get => (byte)Eax; set => Eax = (Eax & 0xFFFFFF00) | value; }
    public byte AH { get => (byte)(Eax >> 8); set => Eax = (Eax & 0xFFFF00FF) | ((uint)value << 8); }
    public ushort AX { get => (ushort)Eax; set => Eax = (Eax & 0xFFFF0000) | value; }
    public byte BL { get => (byte)Ebx; set => Ebx = (Ebx & 0xFFFFFF00) | value; }
    public byte BH { get => (byte)(Ebx >> 8); set => Ebx = (Ebx & 0xFFFF00FF) | ((uint)value << 8); }
    public ushort BX { get => (ushort)Ebx; set => Ebx = (Ebx & 0xFFFF0000) | value; }
    public byte CL { get => (byte)Ecx; set => Ecx = (Ecx & 0xFFFFFF00) | value; }
    public byte CH { get => (byte)(Ecx >> 8); set => Ecx = (Ecx & 0xFFFF00FF) | ((uint)value << 8); }
    public ushort CX { get => (ushort)Ecx; set => Ecx = (Ecx & 0xFFFF0000) | value; }
    public byte DL { get => (byte)Edx; set => Edx = (Edx & 0xFFFFFF00) | value; }
    public byte DH { get => (byte)(Edx >> 8); set => Edx = (Edx & 0xFFFF00FF) | ((uint)value << 8); }
    public ushort DX { get => (ushort)Edx; set => Edx = (Edx & 0xFFFF0000) | value; }
    public ushort SI => (ushort)Esi;
    public ushort DI => (ushort)Edi;
    public ushort BP => (ushort)Ebp;

    public bool Carry
    {
        get => (Flags & CarryFlag) != 0;
        set => Flags = value ? (ushort)(Flags | CarryFlag) : (ushort)(Flags & ~CarryFlag);
    }

    public bool Zero
    {
        get => (Flags & ZeroFlag) != 0;
        set => Flags = value ? (ushort)(Flags | ZeroFlag) : (ushort)(Flags & ~ZeroFlag);
    }

    /// <summary>The usual BIOS error return: CF set, AH = status.</summary>
    public void Fail(byte status)
    {
        AH = status;
        Carry = true;
    }

    /// <summary>The usual success return: CF clear, AH = 0.</summary>
    public void Succeed()
    {
        AH = 0;
        Carry = false;
    }

    public static BiosFrame Parse(ReadOnlySpan<byte> b) => new()
    {
        Edi = BinaryPrimitives.ReadUInt32LittleEndian(b),
        Esi = BinaryPrimitives.ReadUInt32LittleEndian(b[4..]),
        Ebp = BinaryPrimitives.ReadUInt32LittleEndian(b[8..]),
        Ebx = BinaryPrimitives.ReadUInt32LittleEndian(b[16..]),
        Edx = BinaryPrimitives.ReadUInt32LittleEndian(b[20..]),
        Ecx = BinaryPrimitives.ReadUInt32LittleEndian(b[24..]),
        Eax = BinaryPrimitives.ReadUInt32LittleEndian(b[28..]),
        Es = BinaryPrimitives.ReadUInt16LittleEndian(b[32..]),
        Ds = BinaryPrimitives.ReadUInt16LittleEndian(b[34..]),
        Ip = BinaryPrimitives.ReadUInt16LittleEndian(b[36..]),
        Cs = BinaryPrimitives.ReadUInt16LittleEndian(b[38..]),
        Flags = BinaryPrimitives.ReadUInt16LittleEndian(b[40..]),
    };

    /// <summary>Writes every field back over <paramref name="b"/> (ESP, at offset 12, is left as pushed: POPAD skips it).</summary>
    public void WriteTo(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, Edi);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], Esi);
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], Ebp);
        BinaryPrimitives.WriteUInt32LittleEndian(b[16..], Ebx);
        BinaryPrimitives.WriteUInt32LittleEndian(b[20..], Edx);
        BinaryPrimitives.WriteUInt32LittleEndian(b[24..], Ecx);
        BinaryPrimitives.WriteUInt32LittleEndian(b[28..], Eax);
        BinaryPrimitives.WriteUInt16LittleEndian(b[32..], Es);
        BinaryPrimitives.WriteUInt16LittleEndian(b[34..], Ds);
        BinaryPrimitives.WriteUInt16LittleEndian(b[36..], Ip);
        BinaryPrimitives.WriteUInt16LittleEndian(b[38..], Cs);
        BinaryPrimitives.WriteUInt16LittleEndian(b[40..], Flags);
    }
}
