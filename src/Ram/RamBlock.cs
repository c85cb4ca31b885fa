using System.Runtime.CompilerServices;
using Vmm.Linux;

namespace Vmm.Ram;

/// <summary>
/// One named, contiguous piece of guest RAM: where the guest sees it (<see cref="GuestBase"/>), how much of it is
/// live (<see cref="UsedLength"/>) out of the address space reserved for it (<see cref="MaxLength"/>), and the host
/// mapping that backs it. The name is the block's identity across migration.
/// </summary>
/// <remarks>
/// The whole <see cref="MaxLength"/> is mapped once and never moves, so <see cref="HostAddress"/> is stable for the
/// block's lifetime; a resize only changes how much of it is live. Memory is allocated lazily on first touch (no
/// MAP_POPULATE): postcopy needs untouched pages to fault into userfaultfd.
/// </remarks>
public sealed unsafe class RamBlock : IDisposable
{
    private readonly object resizeGate = new();
    private ulong usedLength;
    private int disposed;

    private RamBlock(RamBlockSpec spec, ulong maxLength, ulong pageSize, nint hostAddress, nint aliasAddress, FileDescriptor? fd)
    {
        Name = spec.Name;
        GuestBase = spec.GuestBase;
        usedLength = spec.Size;
        MaxLength = maxLength;
        PageSize = pageSize;
        Backend = spec.Backend;
        HostAddress = hostAddress;
        AliasAddress = aliasAddress;
        Fd = fd;
        IsResizable = maxLength > spec.Size;
        DirtyBitmap = new DirtyBitmap(maxLength / DirtyBitmap.PageSize);
    }

    public string Name { get; }

    public ulong GuestBase { get; }

    /// <summary>The live part of the block, in (0, <see cref="MaxLength"/>]; changes only through <see cref="Resize"/>.</summary>
    public ulong UsedLength => Volatile.Read(ref usedLength);

    /// <summary>The address space reserved for the block (and, for file backends, the size of the file).</summary>
    public ulong MaxLength { get; }

    /// <summary>The host page size backing the block: the unit of discard, remap, resize and userfaultfd placement.</summary>
    public ulong PageSize { get; }

    public RamBackend Backend { get; }

    /// <summary>The primary mapping: what KVM memslots point at and what userfaultfd registers.</summary>
    public nint HostAddress { get; }

    /// <summary>A second mapping of the same file (shared and hugetlbfs blocks created with an alias), or 0.</summary>
    public nint AliasAddress { get; }

    /// <summary>The backing file for shared and hugetlbfs blocks; null for anonymous memory.</summary>
    public FileDescriptor? Fd { get; }

    /// <summary>Whether the block was created with a <see cref="MaxLength"/> beyond its initial size.</summary>
    public bool IsResizable { get; }

    /// <summary>One bit per 4 KiB page over <see cref="MaxLength"/>, fed from KVM's dirty log.</summary>
    public DirtyBitmap DirtyBitmap { get; }

    public ulong GuestEnd => GuestBase + UsedLength;

    /// <summary>Host pages in the live part of the block.</summary>
    public ulong PageCount => UsedLength / PageSize;

    /// <summary>Maps a fixed-size private anonymous block; shorthand for <see cref="Create"/>.</summary>
    public static RamBlock CreateAnonymous(string name, ulong guestBase, ulong size) => Create(new RamBlockSpec(name, guestBase, size));

    /// <summary>
    /// Creates and maps a block. Throws <see cref="ArgumentException"/> for impossible geometry and
    /// <see cref="RamBackendException"/> when the host cannot provide the memory (e.g. too few huge pages).
    /// </summary>
    public static RamBlock Create(RamBlockSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ulong pageSize = spec.Backend == RamBackend.Hugetlbfs ? HugePages.PageSize : (ulong)Environment.SystemPageSize;
        ulong maxLength = spec.MaxSize ?? spec.Size;
        Validate(spec, maxLength, pageSize);

        FileDescriptor? fd = null;
        nint host = 0;
        nint alias = 0;
        try
        {
            switch (spec.Backend)
            {
                case RamBackend.Anonymous:
                    host = Mman.Map(0, maxLength, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_NORESERVE);
                    break;
                case RamBackend.Shared:
                    fd = Memfd.Create(MemfdName(spec.Name), 0);
                    Unistd.Ftruncate(fd, (long)maxLength);
                    host = MapFile(spec, fd, 0, 0, maxLength);
                    break;
                case RamBackend.Hugetlbfs:
                    // Resizable blocks reserve MaxLength: the whole file is mapped, and hugetlb MAP_SHARED reserves it all.
                    HugePages.EnsureAvailable(spec.Name, maxLength);
                    fd = spec.MemPath is null ? CreateHugetlbMemfd(spec.Name) : CreateHugetlbfsFile(spec.MemPath, spec.Name);
                    Unistd.Ftruncate(fd, (long)maxLength);
                    host = MapFile(spec, fd, 0, 0, maxLength);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(spec), spec.Backend, "unknown RAM backend");
            }

            // A forked child (e.g. a helper process) must never share or copy-on-write guest RAM.
            Mman.Advise(host, maxLength, Mman.MADV_DONTFORK);
            if (spec.Alias)
            {
                alias = MapFile(spec, fd!, 0, 0, maxLength);
                Mman.Advise(alias, maxLength, Mman.MADV_DONTFORK);
            }

            return new RamBlock(spec, maxLength, pageSize, host, alias, fd);
        }
        catch
        {
            if (alias != 0)
            {
                Mman.Unmap(alias, maxLength);
            }

            if (host != 0)
            {
                Mman.Unmap(host, maxLength);
            }

            fd?.Dispose();
            throw;
        }
    }

    public bool ContainsGuestAddress(ulong guestAddress) => guestAddress >= GuestBase && guestAddress < GuestEnd;

    public bool ContainsHostAddress(nint hostAddress) =>
        (ulong)hostAddress >= (ulong)HostAddress && (ulong)hostAddress < (ulong)HostAddress + UsedLength;

    /// <summary>
    /// The primary-mapping address of a block offset. Checked against <see cref="MaxLength"/> (the mapping), not
    /// <see cref="UsedLength"/>: whether an offset is live is the caller's question.
    /// </summary>
    public nint HostAddressOf(ulong offset)
    {
        if (offset >= MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"offset 0x{offset:x} is outside block {Name} (max 0x{MaxLength:x})");
        }

        return HostAddress + (nint)offset;
    }

    /// <summary>The alias-mapping address of a block offset; the block must have an alias.</summary>
    public nint AliasAddressOf(ulong offset)
    {
        if (AliasAddress == 0)
        {
            throw new InvalidOperationException($"RAM block {Name} has no alias mapping");
        }

        return AliasAddress + (nint)(HostAddressOf(offset) - HostAddress);
    }

    /// <summary>The block offset of a primary-mapping address anywhere in the reserved range.</summary>
    public ulong OffsetOfHost(nint hostAddress) =>
        TryGetOffsetOfHost(hostAddress, out ulong offset)
            ? offset
            : throw new ArgumentOutOfRangeException(nameof(hostAddress), $"0x{hostAddress:x} is outside block {Name}");

    /// <summary>Exception-free form of <see cref="OffsetOfHost"/> for the fault path.</summary>
    public bool TryGetOffsetOfHost(nint hostAddress, out ulong offset)
    {
        offset = (ulong)hostAddress - (ulong)HostAddress;
        return (ulong)hostAddress >= (ulong)HostAddress && offset < MaxLength;
    }

    /// <summary>A view of live guest memory at a block offset. Bounds are checked against <see cref="UsedLength"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // per page: see JitWarmUp
    public Span<byte> GetSpan(ulong offset, int length)
    {
        CheckSpan(offset, length);
        return new Span<byte>((byte*)HostAddress + offset, length);
    }

    /// <summary>The same bytes as <see cref="GetSpan"/>, through the alias mapping (no userfaultfd faults there).</summary>
    public Span<byte> GetAliasSpan(ulong offset, int length)
    {
        if (AliasAddress == 0)
        {
            throw new InvalidOperationException($"RAM block {Name} has no alias mapping");
        }

        CheckSpan(offset, length);
        return new Span<byte>((byte*)AliasAddress + offset, length);
    }

    public void Read(ulong offset, Span<byte> destination) => GetSpan(offset, destination.Length).CopyTo(destination);

    /// <summary>
    /// Copies live guest memory out through libc (<see cref="Libc"/>): safe on a page that may still be missing
    /// during postcopy, where a managed read would stall the garbage collector. For the monitor and diagnostics.
    /// </summary>
    public void ReadSafely(ulong offset, Span<byte> destination)
    {
        CheckSpan(offset, destination.Length);
        Libc.CopyTo(HostAddress + (nint)offset, destination);
    }

    /// <summary>Writes <paramref name="source"/> at <paramref name="offset"/> through libc, for the same reason as <see cref="ReadSafely"/>.</summary>
    public void WriteSafely(ulong offset, ReadOnlySpan<byte> source)
    {
        CheckSpan(offset, source.Length);
        Libc.CopyFrom(source, HostAddress + (nint)offset);
    }

    /// <summary>
    /// Makes the page at <paramref name="offset"/> resident before managed code reads it, by reading one byte through
    /// libc: a missing page under postcopy is then waited for where the runtime can still collect (the software CPU
    /// touches each page once before it maps it).
    /// </summary>
    public void EnsureResident(ulong offset)
    {
        CheckSpan(offset, 1);
        Libc.Touch(HostAddress + (nint)offset);
    }

    public void Write(ulong offset, ReadOnlySpan<byte> source) => FreshPageCopy.Copy(source, GetSpan(offset, source.Length));

    /// <summary>
    /// Gives the memory of a live range back to the host; afterwards it reads as zeros. The mapping (and any
    /// userfaultfd registration on it) stays, so a later touch of a registered range faults into userfaultfd again.
    /// </summary>
    public void Discard(ulong offset, ulong length)
    {
        CheckRange(offset, length, UsedLength, nameof(Discard));
        DiscardRange(offset, length);
    }

    /// <summary>
    /// Shared and hugetlbfs only: removes a live range from the primary mapping's page tables but keeps its content
    /// in the backing file (and so in the alias mapping). The next touch through the primary mapping faults again;
    /// with the range registered for MINOR faults that fault goes to userfaultfd, which is how postcopy hides a stale
    /// page without throwing its memory away.
    /// </summary>
    public void UnmapFromPrimary(ulong offset, ulong length)
    {
        if (Backend == RamBackend.Anonymous)
        {
            throw new InvalidOperationException($"RAM block {Name} is anonymous: its pages live only in the primary mapping");
        }

        CheckRange(offset, length, UsedLength, nameof(UnmapFromPrimary));

        // On a shared file mapping MADV_DONTNEED only zaps page-table entries; the page cache keeps the pages.
        Mman.Advise(HostAddress + (nint)offset, length, Mman.MADV_DONTNEED);
    }

    /// <summary>
    /// Replaces a live range of the primary mapping in place (MAP_FIXED) with fresh memory of the same backend, as a
    /// VMM does after a hardware memory error. The range reads zeros afterwards, and the kernel drops any userfaultfd
    /// registration on it: placing pages there then reports <see cref="PlacementStatus.NotRegistered"/> (seed 000).
    /// </summary>
    public void Remap(ulong offset, ulong length)
    {
        CheckRange(offset, length, UsedLength, nameof(Remap));
        ReplaceRange(offset, length);
    }

    /// <summary>
    /// Changes <see cref="UsedLength"/> within (0, <see cref="MaxLength"/>]. Shrinking gives [new, old) back to the
    /// host by replacing it with fresh memory, as <see cref="Remap"/> does: it stays mapped, so growing again exposes
    /// zeros, and it loses any userfaultfd registration, so pages still arriving for it during postcopy are refused
    /// with <see cref="PlacementStatus.NotRegistered"/> (seed 000). Use <see cref="RamBlockRegistry.Resize"/> so
    /// subscribers (memslots, migration) hear about it.
    /// </summary>
    public void Resize(ulong newUsedLength)
    {
        if (!IsResizable)
        {
            throw new InvalidOperationException($"RAM block {Name} is not resizable (created without a MaxSize beyond its size)");
        }

        if (newUsedLength == 0 || newUsedLength > MaxLength || newUsedLength % PageSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(newUsedLength), $"RAM block {Name}: new used length 0x{newUsedLength:x} must be a non-zero multiple of the page size 0x{PageSize:x} no larger than 0x{MaxLength:x}");
        }

        lock (resizeGate)
        {
            ulong old = UsedLength;

            // Publish the smaller length before replacing the tail, so nobody reads it as live while it turns to zeros.
            Volatile.Write(ref usedLength, newUsedLength);
            if (newUsedLength < old)
            {
                ReplaceRange(newUsedLength, old - newUsedLength);
            }
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 0)
        {
            Mman.Unmap(HostAddress, MaxLength);
            if (AliasAddress != 0)
            {
                Mman.Unmap(AliasAddress, MaxLength);
            }

            Fd?.Dispose();
        }
    }

    public override string ToString() => $"{Name} [{Backend}, gpa 0x{GuestBase:x}, used 0x{UsedLength:x}, max 0x{MaxLength:x}, page 0x{PageSize:x}]";

    /// <summary>Maps fresh memory of the block's backend over a range of the primary mapping (MAP_FIXED).</summary>
    private void ReplaceRange(ulong offset, ulong length)
    {
        nint address = HostAddress + (nint)offset;
        if (Backend == RamBackend.Anonymous)
        {
            Mman.Map(address, length, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_NORESERVE | Mman.MAP_FIXED);
        }
        else
        {
            // The file keeps the old pages after the mapping goes, so empty that part of the file first.
            Unistd.Fallocate(Fd!, Unistd.FALLOC_FL_PUNCH_HOLE | Unistd.FALLOC_FL_KEEP_SIZE, (long)offset, (long)length);
            MapFile(Name, Backend, Fd!, address, offset, length);
        }

        // The replacement is a new VMA: it does not inherit the old one's advice.
        Mman.Advise(address, length, Mman.MADV_DONTFORK);
    }

    private void DiscardRange(ulong offset, ulong length)
    {
        if (Backend == RamBackend.Anonymous)
        {
            Mman.Advise(HostAddress + (nint)offset, length, Mman.MADV_DONTNEED);
        }
        else
        {
            // Punching the file releases the pages for every mapping of it (primary and alias) at once.
            Unistd.Fallocate(Fd!, Unistd.FALLOC_FL_PUNCH_HOLE | Unistd.FALLOC_FL_KEEP_SIZE, (long)offset, (long)length);
        }
    }

    private void CheckRange(ulong offset, ulong length, ulong limit, string operation)
    {
        if (length == 0 || offset % PageSize != 0 || length % PageSize != 0)
        {
            throw new ArgumentException($"{operation} on RAM block {Name}: offset 0x{offset:x} and length 0x{length:x} must be multiples of the page size 0x{PageSize:x} (length non-zero)");
        }

        if (offset > limit || length > limit - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"{operation} on RAM block {Name}: [0x{offset:x}, +0x{length:x}) is outside the used length 0x{limit:x}");
        }
    }

    private void CheckSpan(ulong offset, int length)
    {
        if (length < 0 || offset > UsedLength || (ulong)length > UsedLength - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"[0x{offset:x}, +0x{length:x}) is outside block {Name} (used 0x{UsedLength:x})");
        }
    }

    private static void Validate(RamBlockSpec spec, ulong maxLength, ulong pageSize)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec.Name, nameof(spec));
        string name = spec.Name;
        if (spec.Size == 0 || spec.Size % pageSize != 0 || spec.GuestBase % pageSize != 0 || maxLength % pageSize != 0)
        {
            throw new ArgumentException(
                $"RAM block {name} ({spec.Backend}): base 0x{spec.GuestBase:x}, size 0x{spec.Size:x} and max size 0x{maxLength:x} must be non-zero multiples of the page size 0x{pageSize:x}",
                nameof(spec));
        }

        if (maxLength < spec.Size)
        {
            throw new ArgumentException($"RAM block {name}: max size 0x{maxLength:x} is smaller than its size 0x{spec.Size:x}", nameof(spec));
        }

        if (spec.GuestBase + maxLength < spec.GuestBase)
        {
            throw new ArgumentException($"RAM block {name}: [0x{spec.GuestBase:x}, +0x{maxLength:x}) wraps the guest physical address space", nameof(spec));
        }

        if (spec.Alias && spec.Backend == RamBackend.Anonymous)
        {
            throw new ArgumentException($"RAM block {name}: an alias mapping needs a shared or hugetlbfs backend; private anonymous memory cannot be mapped twice", nameof(spec));
        }

        if (spec.MemPath is not null && spec.Backend != RamBackend.Hugetlbfs)
        {
            throw new ArgumentException($"RAM block {name}: a mem-path is only meaningful for the hugetlbfs backend, not {spec.Backend}", nameof(spec));
        }
    }

    private static nint MapFile(RamBlockSpec spec, FileDescriptor fd, nint address, ulong offset, ulong length) =>
        MapFile(spec.Name, spec.Backend, fd, address, offset, length);

    private static nint MapFile(string name, RamBackend backend, FileDescriptor fd, nint address, ulong offset, ulong length)
    {
        int flags = Mman.MAP_SHARED | (address != 0 ? Mman.MAP_FIXED : 0);
        try
        {
            return Mman.Map(address, length, Mman.PROT_READ | Mman.PROT_WRITE, flags, fd.Value, (long)offset);
        }
        catch (LinuxException e) when (backend == RamBackend.Hugetlbfs && e.Errno is Errno.ENOMEM or Errno.ENOSPC)
        {
            // hugetlb reserves a shared mapping's pages at mmap time: ENOMEM here means the pool ran dry.
            throw HugePages.Shortage(name, length, e);
        }
    }

    private static string MemfdName(string blockName)
    {
        // The kernel limits memfd names to 249 bytes; the name only shows up in /proc/*/maps.
        string name = $"vmm-ram:{blockName}";
        return name.Length > 200 ? name[..200] : name;
    }

    private static FileDescriptor CreateHugetlbMemfd(string blockName)
    {
        try
        {
            return Memfd.Create(MemfdName(blockName), Memfd.MFD_HUGETLB | Memfd.MFD_HUGE_2MB);
        }
        catch (LinuxException e) when (e.Errno == Errno.EINVAL)
        {
            throw new RamBackendException($"RAM block '{blockName}': this kernel cannot create 2 MiB hugetlb memfds (memfd_create: EINVAL); is CONFIG_HUGETLBFS enabled?", e);
        }
    }

    /// <summary>A private file on a hugetlbfs mount, unlinked at once so nothing is left behind if the VMM dies.</summary>
    private static FileDescriptor CreateHugetlbfsFile(string directory, string blockName)
    {
        string safeName = string.Concat(blockName.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_'));
        string path = Path.Combine(directory, $"vmm-{Environment.ProcessId}-{safeName}-{Guid.NewGuid():N}");
        FileDescriptor fd;
        try
        {
            fd = Unistd.Open(path, Unistd.O_RDWR | Unistd.O_CREAT | Unistd.O_EXCL, 0x180 /* 0600 */);
        }
        catch (LinuxException e)
        {
            throw new RamBackendException($"RAM block '{blockName}': cannot create a file in mem-path {directory}: {e.Message}", e);
        }

        try
        {
            Unistd.Unlink(path);
            StatfsBuffer fs = Statfs.Fstatfs(fd);
            if (fs.Type != Statfs.HUGETLBFS_MAGIC)
            {
                throw new RamBackendException($"RAM block '{blockName}': mem-path {directory} is not on a hugetlbfs mount (mount one as root with: mount -t hugetlbfs none {directory})");
            }

            if ((ulong)fs.BlockSize != HugePages.PageSize)
            {
                throw new RamBackendException($"RAM block '{blockName}': the hugetlbfs mount at {directory} uses {fs.BlockSize / 1024} KiB pages; mount one with pagesize=2M");
            }

            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }
}
