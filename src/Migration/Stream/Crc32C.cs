using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Vmm.Migration.Stream;

/// <summary>CRC-32C (Castagnoli) with the CPU's crc32 instruction through <see cref="BitOperations.Crc32C(uint, ulong)"/>.</summary>
/// <remarks>
/// Every page of a migration is checksummed once on each side, so this is on the hot path. The crc32 instruction
/// takes 3 cycles but can start one per cycle: one dependent chain runs at a third of the speed the CPU allows.
/// Long inputs are therefore cut into stripes of three lanes of <see cref="Lane"/> bytes, checksummed side by side
/// from registers (the first lane carries the running value, the others start at zero), and joined with
/// <c>crc(A‖B‖C) = shift(shift(crcA) ⊕ crcB) ⊕ crcC</c>, where shift appends <see cref="Lane"/> zero bytes. Shifting
/// is linear in the 32-bit register, so it is four table lookups (<see cref="ShiftTable"/>).
/// </remarks>
public static class Crc32C
{
    /// <summary>Bytes per lane; a stripe is three lanes.</summary>
    private const int Lane = 1024;

    private const int Stripe = 3 * Lane;

    /// <summary>shift(v) for v = b &lt;&lt; 8k is ShiftTable[k * 256 + b].</summary>
    private static readonly uint[] ShiftTable = BuildShiftTable();

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= Stripe)
        {
            ref byte first = ref Unsafe.AsRef(in data[0]);
            uint a = crc;
            uint b = 0;
            uint c = 0;
            for (int offset = 0; offset < Lane; offset += 8)
            {
                a = BitOperations.Crc32C(a, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref first, offset)));
                b = BitOperations.Crc32C(b, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref first, offset + Lane)));
                c = BitOperations.Crc32C(c, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref first, offset + (2 * Lane))));
            }

            crc = Shift(Shift(a) ^ b) ^ c;
            data = data[Stripe..];
        }

        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (byte b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return crc;
    }

    /// <summary>The standard CRC-32C of <paramref name="data"/> (initial and final XOR with all-ones).</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(uint.MaxValue, data);

    /// <summary>The register after <see cref="Lane"/> more zero bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Shift(uint crc)
    {
        uint[] table = ShiftTable;
        return table[(int)(crc & 0xff)] ^ table[256 + (int)((crc >> 8) & 0xff)] ^ table[512 + (int)((crc >> 16) & 0xff)] ^ table[768 + (int)(crc >> 24)];
    }

    /// <summary>Shifts each of the 32 one-bit registers the slow way, then combines them (linearity) into byte tables.</summary>
    private static uint[] BuildShiftTable()
    {
        Span<uint> bit = stackalloc uint[32];
        for (int i = 0; i < 32; i++)
        {
            uint register = 1u << i;
            for (int zeros = 0; zeros < Lane; zeros += 8)
            {
                register = BitOperations.Crc32C(register, 0ul);
            }

            bit[i] = register;
        }

        var table = new uint[4 * 256];
        for (int k = 0; k < 4; k++)
        {
            for (int value = 0; value < 256; value++)
            {
                uint shifted = 0;
                for (int i = 0; i < 8; i++)
                {
                    if ((value & (1 << i)) != 0)
                    {
                        shifted ^= bit[(8 * k) + i];
                    }
                }

                table[(k * 256) + value] = shifted;
            }
        }

        return table;
    }
}
