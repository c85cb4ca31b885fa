using static Iced.Intel.AssemblerRegisters;

namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// The first 512 bytes of a test image: the part SeaBIOS loads by itself. vmm loads the whole image, so the boot
/// sector first looks for the harness signature right after itself; only when it is missing (under a BIOS) does it
/// read the rest of the image from the boot drive with int 13h AH=42h (LBA extended read) in 32 KiB pieces.
/// Either way it then jumps to the harness, which relies on nothing the BIOS set up.
/// </summary>
public static class BootSector
{
    public const int Size = 512;

    /// <summary>Sectors per int 13h call: 32 KiB, within every BIOS's limit of 127 and never past a 64 KiB segment.</summary>
    private const ushort SectorsPerRead = 64;

    /// <summary>Assembles the boot sector for an image with <paramref name="sectorsAfterBoot"/> more sectors.</summary>
    public static byte[] Build(int sectorsAfterBoot, ReadOnlySpan<byte> signature, byte loadFailedExitValue)
    {
        var signatureLow = BitConverter.ToUInt32(signature[..4]);
        var signatureHigh = BitConverter.ToUInt32(signature[4..8]);
        var (code, _) = ImageAssembler.Build(MemoryMap.LoadAddress, image =>
        {
            var a = image.Asm;
            // SeaBIOS and vmm both enter at 0000:7C00, so the code needs no far jump to normalise CS (one instruction
            // fewer that a young CPU must get right before any case runs).
            a.cli();
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.mov(es, ax);
            a.mov(ss, ax);
            a.mov(sp, MemoryMap.LoadAddress);
            a.cld();
            a.cmp(__dword_ptr[MemoryMap.HarnessOrigin], signatureLow);
            a.jne(image.L("boot.load"));
            a.cmp(__dword_ptr[MemoryMap.HarnessOrigin + 4], signatureHigh);
            a.jne(image.L("boot.load"));
            a.jmp(MemoryMap.MainEntry);

            // Under a BIOS: DL is the boot drive.
            image.Bind("boot.load");
            a.mov(__byte_ptr[image.Addr("boot.drive")], dl);
            image.Bind("boot.next");
            a.mov(ax, __word_ptr[image.Addr("boot.remaining")]);
            a.test(ax, ax);
            a.jz(image.L("boot.check"));
            a.cmp(ax, SectorsPerRead);
            a.jbe(image.L("boot.count"));
            a.mov(ax, SectorsPerRead);
            image.Bind("boot.count");
            a.mov(__word_ptr[image.Addr("boot.dap") + 2], ax);
            a.sub(__word_ptr[image.Addr("boot.remaining")], ax);
            a.mov(si, image.Addr("boot.dap"));
            a.mov(dl, __byte_ptr[image.Addr("boot.drive")]);
            a.mov(ah, 0x42);
            a.@int(0x13);
            a.jc(image.L("boot.fail"));
            // The BIOS leaves the number of sectors it read in the packet: advance the LBA and the buffer by that.
            a.mov(ax, __word_ptr[image.Addr("boot.dap") + 2]);
            a.add(__word_ptr[image.Addr("boot.dap") + 8], ax);
            a.shl(ax, 5);
            a.add(__word_ptr[image.Addr("boot.dap") + 6], ax);
            a.jmp(image.L("boot.next"));

            image.Bind("boot.check");
            a.cmp(__dword_ptr[MemoryMap.HarnessOrigin], signatureLow);
            a.jne(image.L("boot.fail"));
            a.cmp(__dword_ptr[MemoryMap.HarnessOrigin + 4], signatureHigh);
            a.jne(image.L("boot.fail"));
            a.jmp(MemoryMap.MainEntry);

            image.Bind("boot.fail");
            a.mov(al, loadFailedExitValue);
            a.@out(0xF4, al);
            image.Bind("boot.halt");
            a.cli();
            a.hlt();
            a.jmp(image.L("boot.halt"));

            image.Bind("boot.drive");
            a.db(0);
            image.Bind("boot.remaining");
            a.dw(checked((ushort)sectorsAfterBoot));
            // Disk address packet: size 16, reserved, sector count, buffer offset, buffer segment, 64-bit LBA.
            image.Bind("boot.dap");
            a.db(0x10, 0);
            a.dw(0, 0, MemoryMap.HarnessOrigin >> 4);
            a.dd(1, 0);
        });

        if (code.Length > Size - 2)
        {
            throw new InvalidOperationException($"boot sector code is {code.Length} bytes, more than {Size - 2}");
        }

        var sector = new byte[Size];
        code.CopyTo(sector, 0);
        sector[Size - 2] = 0x55;
        sector[Size - 1] = 0xAA;
        return sector;
    }
}
