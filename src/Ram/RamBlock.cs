using Vmm.Linux;

namespace Vmm.Ram;

/// <summary>
/// One named, contiguous piece of guest RAM: where the guest sees it (<see cref="GuestBase"/>), how much of it is
/// live (<see cref="UsedLength"/>) out of the address space reserved for it (<see cref="MaxLength"/>), and the host
/// mapping that backs it. The name is the block's identity across migration.
/// </summary>
public sealed unsafe class RamBlock : IDisposable
{
    private int disposed;

    private RamBlock(string name, ulong guestBase, ulong usedLength, ulong maxLength, ulong pageSize, RamBackend backend, nint hostAddress, FileDescriptor? fd)
    {
        Name = name;
        GuestBase = guestBase;
        UsedLength = usedLength;
        MaxLength = maxLength;
        PageSize = pageSize;
        Backend = backend;
        HostAddress = hostAddress;
        Fd = fd;
    }

    public string Name { get; }

    public ulong GuestBase { get; }

    public ulong UsedLength { get; private set; }

    public ulong MaxLength { get; }

    /// <summary>The host page size backing the block: the unit of discard and of userfaultfd placement.</summary>
    public ulong PageSize { get; }

    public RamBackend Backend { get; }

    public nint HostAddress { get; }

    /// <summary>The backing file for shared and hugetlbfs blocks; null for anonymous memory.</summary>
    public FileDescriptor? Fd { get; }

    public bool IsResizable => MaxLength != UsedLength;

    public ulong GuestEnd => GuestBase + UsedLength;

    /// <summary>Maps a private anonymous block of <paramref name="size"/> bytes.</summary>
    public static RamBlock CreateAnonymous(string name, ulong guestBase, ulong size)
    {
        ValidateGeometry(name, guestBase, size, Environment.SystemPageSize);
        nint host = Mman.Map(0, size, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_NORESERVE);

        // A forked child (e.g. a helper process) must never share or copy-on-write guest RAM.
        Mman.Advise(host, size, Mman.MADV_DONTFORK);
        return new RamBlock(name, guestBase, size, size, (ulong)Environment.SystemPageSize, RamBackend.Anonymous, host, null);
    }

    public bool ContainsGuestAddress(ulong guestAddress) => guestAddress >= GuestBase && guestAddress < GuestEnd;

    public bool ContainsHostAddress(nint hostAddress) =>
        (ulong)hostAddress >= (ulong)HostAddress && (ulong)hostAddress < (ulong)HostAddress + UsedLength;

    /// <summary>A view of live guest memory at a block offset. Bounds are checked against <see cref="UsedLength"/>.</summary>
    public Span<byte> GetSpan(ulong offset, int length)
    {
        if (length < 0 || offset > UsedLength || (ulong)length > UsedLength - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"[0x{offset:x}, +0x{length:x}) is outside block {Name} (used 0x{UsedLength:x})");
        }

        return new Span<byte>((byte*)HostAddress + offset, length);
    }

    private static void ValidateGeometry(string name, ulong guestBase, ulong size, long pageSize)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (size == 0 || size % (ulong)pageSize != 0 || guestBase % (ulong)pageSize != 0)
        {
            throw new ArgumentException($"RAM block {name}: base 0x{guestBase:x} and size 0x{size:x} must be non-zero multiples of the page size 0x{pageSize:x}");
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 0)
        {
            Mman.Unmap(HostAddress, MaxLength);
            Fd?.Dispose();
        }
    }
}
