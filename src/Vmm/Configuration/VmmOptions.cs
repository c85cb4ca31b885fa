namespace Vmm.Configuration;

/// <summary>
/// Options as the user wrote them, bound from (lowest to highest precedence) these defaults, an optional vmm.json,
/// VMM_* environment variables and the command line. <see cref="RunSettings"/> validates and types them.
/// </summary>
public sealed class VmmOptions
{
    /// <summary>auto (KVM where it works, else the software CPU), kvm or emulator.</summary>
    public string Accel { get; set; } = "auto";

    public string Memory { get; set; } = "16M";

    public string LoadAddress { get; set; } = "0x7c00";

    public string Serial { get; set; } = "stdio";

    public string LogLevel { get; set; } = "warning";

    public string? LogFile { get; set; }

    public bool Trace { get; set; }

    /// <summary>Backend of the main block (pc.ram): anonymous, shared or hugetlbfs.</summary>
    public string RamBackend { get; set; } = "anonymous";

    /// <summary>A directory on a hugetlbfs mount for file-backed huge pages (implies the hugetlbfs backend).</summary>
    public string? MemPath { get; set; }

    /// <summary>Extra RAM blocks, each "name=NAME,gpa=ADDR,size=SIZE[,max=SIZE][,backend=B]".</summary>
    public List<string> RamBlocks { get; set; } = [];

    /// <summary>Firmware: "none" (the bare machine) or "vmm" (the built-in BIOS).</summary>
    public string Bios { get; set; } = "vmm";

    /// <summary>With the BIOS: int 13h writes reach the image file instead of a private copy.</summary>
    public bool DiskWritable { get; set; }

    /// <summary>QMP monitor socket, "unix:PATH".</summary>
    public string? Monitor { get; set; }
}
