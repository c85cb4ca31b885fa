namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// Where a test image puts things in guest memory. Everything the harness itself uses is below the image or
/// inside it; the data area is above the largest image, so no case can overwrite harness code or a record.
/// </summary>
public static class MemoryMap
{
    /// <summary>Where vmm loads an image and SeaBIOS loads a boot sector; the boot sector is assembled for it.</summary>
    public const ushort LoadAddress = 0x7C00;

    /// <summary>The harness code starts right after the 512-byte boot sector (the part SeaBIOS loads by itself).</summary>
    public const ushort HarnessOrigin = 0x7E00;

    /// <summary>The main entry point: after the 8-byte signature that tells the loader the image is all there.</summary>
    public const ushort MainEntry = HarnessOrigin + 8;

    /// <summary>Everything up to here can be image: code and stubs in CS = 0 (below 64 KiB), records above.</summary>
    public const int ImageLimit = 0x88000;

    /// <summary>The harness's own stack (grows down towards the IVT and BIOS data area, far from both).</summary>
    public const ushort HarnessStackTop = 0x0C00;

    /// <summary>
    /// SS:SP of a case that does not use the stack is 0000:0E00 (with random upper ESP bits): an exception pushes its
    /// frame below it, outside the compared memory.
    /// </summary>
    public const ushort DefaultCaseStackPointer = 0x0E00;

    /// <summary>The result slot the harness fills after each case and sends on COM1 (see <see cref="ResultLayout"/>).</summary>
    public const ushort ResultSlot = 0x0F00;

    /// <summary>
    /// The compared data area: linear 0x90000 = 9000:0000, free memory under SeaBIOS (below its EBDA) and under vmm.
    /// Cases reach it with small offsets only, 16-bit or 32-bit addressing alike: real-mode segment limits (which
    /// QEMU's TCG does not check) are never put to the test.
    /// </summary>
    public const uint DataLinear = 0x0009_0000;

    /// <summary>The real-mode segment whose base is <see cref="DataLinear"/>.</summary>
    public const ushort DataSegment = (ushort)(DataLinear >> 4);

    /// <summary>The most bytes a batch may compare in its data area.</summary>
    public const int DataCapacity = 256;
}
