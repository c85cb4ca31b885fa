using Vmm.Ram;

namespace Vmm.Bios;

/// <summary>
/// The small services: int 11h (equipment word), int 12h (base memory), int 15h (E820 memory map from the RAM blocks,
/// AH=88h and E801h sizes, A20, AH=86h wait). Unknown int 15h functions return CF set with AH = 86h, as real BIOSes do.
/// </summary>
public sealed class SystemServices(BiosMemory memory, RamBlockRegistry ram)
{
    private const uint Smap = 0x534D4150;
    private const byte Unsupported = 0x86;

    public void Equipment(BiosFrame f) => f.AX = memory.ReadWord(BiosDataArea.EquipmentWord);

    public void BaseMemory(BiosFrame f) => f.AX = memory.ReadWord(BiosDataArea.BaseMemory);

    public void System(BiosFrame f)
    {
        if (f.AX == 0xE820 && f.Edx == Smap)
        {
            MemoryMap(f);
            return;
        }

        switch (f.AH)
        {
            case 0x88:
                f.AX = (ushort)Math.Min(ExtendedKiB(0x10_0000, ulong.MaxValue), 0xFC00);
                f.Carry = false;
                break;
            case 0xE8 when f.AL == 0x01:
                f.AX = f.CX = (ushort)Math.Min(ExtendedKiB(0x10_0000, 0x100_0000), 0x3C00);
                f.BX = f.DX = (ushort)Math.Min(ExtendedKiB(0x100_0000, ulong.MaxValue) / 64, 0xFFFF);
                f.Carry = false;
                break;
            case 0x24:
                switch (f.AL)
                {
                    case 0x00:
                        f.Fail(Unsupported); // A20 is always on here
                        break;
                    case 0x01:
                        f.Succeed();
                        break;
                    case 0x02:
                        f.Succeed();
                        f.AL = 1;
                        break;
                    case 0x03:
                        f.Succeed();
                        f.BX = 0;
                        break;
                    default:
                        f.Fail(Unsupported);
                        break;
                }

                break;
            case 0x86:
                // Wait CX:DX microseconds. The vCPU sleeps here; a pause waits at most this long, so it is capped.
                long microseconds = Math.Min(((long)f.CX << 16) | f.DX, 1_000_000);
                Thread.Sleep(TimeSpan.FromMicroseconds(microseconds));
                f.Succeed();
                break;
            default:
                f.Fail(Unsupported);
                break;
        }
    }

    /// <summary>The E820 entries: conventional memory, the EBDA and the ROM (reserved), then every RAM block above 1 MiB.</summary>
    public IReadOnlyList<(ulong Base, ulong Length, uint Type)> MemoryMapEntries()
    {
        var entries = new List<(ulong, ulong, uint)>();
        foreach (RamBlock block in ram.Blocks.OrderBy(b => b.GuestBase))
        {
            ulong start = block.GuestBase;
            ulong end = block.GuestBase + block.UsedLength;
            if (start < BiosLayout.EbdaBase)
            {
                entries.Add((start, Math.Min(end, BiosLayout.EbdaBase) - start, 1));
            }

            if (end > 0x10_0000)
            {
                ulong from = Math.Max(start, 0x10_0000);
                entries.Add((from, end - from, 1));
            }
        }

        entries.Add((BiosLayout.EbdaBase, 0xA0000 - BiosLayout.EbdaBase, 2));
        entries.Add((BiosLayout.RomBase, (ulong)BiosLayout.RomSize, 2));
        return [.. entries.OrderBy(e => e.Item1)];
    }

    private void MemoryMap(BiosFrame f)
    {
        IReadOnlyList<(ulong Base, ulong Length, uint Type)> entries = MemoryMapEntries();
        if (f.Ebx >= entries.Count || f.Ecx < 20)
        {
            f.Fail(Unsupported);
            return;
        }

        (ulong start, ulong length, uint type) = entries[(int)f.Ebx];
        Span<byte> entry = stackalloc byte[20];
        global::System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(entry, start);
        global::System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], length);
        global::System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(entry[16..], type);
        memory.Write(BiosMemory.Linear(f.Es, f.DI), entry);
        f.Eax = Smap;
        f.Ecx = 20;
        f.Ebx = f.Ebx + 1 < entries.Count ? f.Ebx + 1 : 0;
        f.Carry = false;
    }

    /// <summary>KiB of RAM in [from, to).</summary>
    private ulong ExtendedKiB(ulong from, ulong to)
    {
        ulong total = 0;
        foreach (RamBlock block in ram.Blocks)
        {
            ulong start = Math.Max(block.GuestBase, from);
            ulong end = Math.Min(block.GuestBase + block.UsedLength, to);
            if (end > start)
            {
                total += end - start;
            }
        }

        return total / 1024;
    }
}
