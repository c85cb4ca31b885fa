namespace Vmm.Ram;

/// <summary>The ioctls the kernel allows on a registered range, as UFFDIO_REGISTER reports them (1 &lt;&lt; _UFFDIO_x).</summary>
[Flags]
public enum UffdRangeIoctls : ulong
{
    None = 0,
    Wake = 1ul << 0x02,
    Copy = 1ul << 0x03,
    ZeroPage = 1ul << 0x04,
    Move = 1ul << 0x05,
    WriteProtect = 1ul << 0x06,
    Continue = 1ul << 0x07,
    Poison = 1ul << 0x08,
}
