using System.Runtime.InteropServices;
using Vmm.Accelerator;
using Vmm.Emulator.Decoding;
using Vmm.Ram;

namespace Vmm.Emulator.Memory;

/// <summary>
/// Guest-physical memory as the software CPU reaches it: a flat map from each 4 KiB guest page to the host address
/// of that page in its RAM block's own mapping (the memory KVM would map), filled lazily, one table for reads and one
/// for writes. Real mode and unpaged protected mode have no page tables, so unlike QEMU's soft TLB this map never
/// misses once a page is in it. A zero entry sends the access to the slow path: a page not yet made resident (under
/// postcopy it may be missing: <see cref="RamBlock.EnsureResident"/> waits for it outside managed code), no RAM
/// there (MMIO), or — in the write table — a page that holds decoded code (the write must drop that code first) or a
/// ROM page (<see cref="IsReadOnly"/>: the slow path drops the store). So ordinary RAM pays nothing for ROMs.
/// </summary>
/// <remarks>
/// The 32-bit physical address space (what real and protected mode can address without PAE) is 2^20 pages: each
/// table is 8 MiB of address space, committed by the kernel only where touched. Every write the CPU makes to RAM
/// also sets the page's byte in <see cref="DirtyMap"/> (<see cref="SoftwareDirtyLog"/>).
/// </remarks>
public sealed unsafe class GuestPhysicalMemory : IDisposable
{
    public const int PageShift = 12;
    public const uint PageSize = 1u << PageShift;
    public const uint PageMask = PageSize - 1;

    /// <summary>Pages in the 32-bit physical address space.</summary>
    public const int PageCount = 1 << (32 - PageShift);

    private readonly RamBlockRegistry registry;
    private readonly List<uint> installed = [];
    private bool disposed;

    public GuestPhysicalMemory(RamBlockRegistry registry)
    {
        this.registry = registry;
        ReadPages = (nint*)NativeMemory.AllocZeroed(PageCount, (nuint)sizeof(nint));
        WritePages = (nint*)NativeMemory.AllocZeroed(PageCount, (nuint)sizeof(nint));
        DirtyMap = (byte*)NativeMemory.AllocZeroed(PageCount);
        ReadOnlyMap = (byte*)NativeMemory.AllocZeroed(PageCount);
        Holes = new RamHoles();
        Code = new CodeCache(this);
    }

    /// <summary>Host address of each guest page for reads, or 0 (slow path).</summary>
    public nint* ReadPages { get; }

    /// <summary>Host address of each guest page for writes, or 0 (slow path: also every page that holds decoded code).</summary>
    public nint* WritePages { get; }

    /// <summary>One byte per guest page, set to 1 by every CPU write to RAM; harvested by <see cref="SoftwareDirtyLog"/>.</summary>
    public byte* DirtyMap { get; }

    public RamHoles Holes { get; }

    /// <summary>The ROM ranges of the blocks; <see cref="ReadOnlyMap"/> has their pages for the store path.</summary>
    public RamReadOnlyRanges ReadOnly { get; } = new();

    /// <summary>One byte per guest page, non-zero where the page is ROM: the guest's stores to it are dropped.</summary>
    private byte* ReadOnlyMap { get; }

    public RamBlockRegistry Registry => registry;

    /// <summary>Which pages hold decoded instructions (so that writes to them drop the code).</summary>
    public CodeCache Code { get; }

    /// <summary>
    /// The host address of guest page <paramref name="page"/> made resident, or 0 when no RAM is there (MMIO). Also
    /// installs it in the read table, and in the write table unless the page holds decoded code.
    /// </summary>
    public nint Map(uint page)
    {
        ulong address = (ulong)page << PageShift;
        RamBlock? block = registry.FindByGuestAddress(address);
        if (block is null)
        {
            return 0;
        }

        ulong offset = address - block.GuestBase;
        if (Holes.Contains(block, offset))
        {
            return 0;
        }

        // Before managed code ever reads it: a page still missing under postcopy is waited for inside libc.
        block.EnsureResident(offset);
        nint host = block.HostAddressOf(offset);
        if (ReadPages[page] == 0)
        {
            installed.Add(page);
        }

        ReadPages[page] = host;
        if (!Code.Contains(page) && ReadOnlyMap[page] == 0)
        {
            WritePages[page] = host;
        }

        return host;
    }

    /// <summary>Whether guest stores to <paramref name="page"/> are dropped (a ROM page; the slow store path asks).</summary>
    public bool IsReadOnly(uint page) => ReadOnlyMap[page] != 0;

    /// <summary>
    /// Makes a range of a block ROM to the guest: its pages leave the write table for good, so every store to them
    /// (the fast paths, the bulk string paths) reaches the slow path, which drops it. Loads and fetches are unchanged.
    /// </summary>
    public void AddReadOnly(RamBlock block, ulong offset, ulong length)
    {
        ReadOnly.Add(block, offset, length);
        SetReadOnlyPages(block, offset, length, 1);
        Forget(block, offset, length);
    }

    /// <summary>Forgets a block's ROM ranges (the block left the registry).</summary>
    public void ForgetReadOnly(RamBlock block)
    {
        SetReadOnlyPages(block, 0, block.MaxLength, 0);
        ReadOnly.Forget(block);
    }

    /// <summary>Drops the pages of a range of a block from both tables (and the code decoded from them).</summary>
    public void Forget(RamBlock block, ulong offset, ulong length)
    {
        ulong first = (block.GuestBase + offset) >> PageShift;
        ulong end = Math.Min((block.GuestBase + offset + length + PageMask) >> PageShift, PageCount);
        for (ulong page = first; page < end; page++)
        {
            ReadPages[page] = 0;
            WritePages[page] = 0;
            Code.Invalidate((uint)page);
        }
    }

    /// <summary>Drops every page from both tables and all decoded code: the state of the machine was replaced.</summary>
    public void ForgetAll()
    {
        foreach (uint page in installed)
        {
            ReadPages[page] = 0;
            WritePages[page] = 0;
        }

        installed.Clear();
        Code.InvalidateAll();
    }

    /// <summary>Stops writes to a page from taking the fast path (its code must be dropped first).</summary>
    public void ProtectCode(uint page) => WritePages[page] = 0;

    /// <summary>Lets writes to a page that no longer holds code take the fast path again (unless it is ROM).</summary>
    public void UnprotectCode(uint page) => WritePages[page] = ReadOnlyMap[page] == 0 ? ReadPages[page] : 0;

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        NativeMemory.Free(ReadPages);
        NativeMemory.Free(WritePages);
        NativeMemory.Free(DirtyMap);
        NativeMemory.Free(ReadOnlyMap);
    }

    private void SetReadOnlyPages(RamBlock block, ulong offset, ulong length, byte value)
    {
        ulong first = (block.GuestBase + offset) >> PageShift;
        ulong end = Math.Min((block.GuestBase + offset + length + PageMask) >> PageShift, PageCount);
        for (ulong page = first; page < end; page++)
        {
            ReadOnlyMap[page] = value;
        }
    }
}
