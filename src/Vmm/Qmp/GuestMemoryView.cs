using Vmm.Accelerator.State;
using Vmm.Machine;
using Vmm.Ram;

namespace Vmm.Qmp;

/// <summary>
/// Guest memory as the monitor's commands see it: physical ranges that must be entirely RAM, and virtual addresses of
/// a vCPU. vmm's guests run unpaged (real mode, or protected mode with CR0.PG clear), where a virtual (linear)
/// address is the physical one; with paging on, translation would need a page-table walk vmm does not do, and the
/// commands say so instead of reading the wrong memory.
/// </summary>
public static class GuestMemoryView
{
    /// <summary>The vCPU a command names (cpu-index), or vCPU 0 by default.</summary>
    public static VcpuRunner Cpu(VirtualMachine machine, long? index)
    {
        long chosen = index ?? 0;
        if (chosen < 0 || chosen >= machine.Vcpus.Count)
        {
            throw QmpException.Generic("Parameter 'cpu-index' expects a CPU number");
        }

        return machine.Vcpus[(int)chosen];
    }

    /// <summary>Registers of one vCPU, read with the vCPUs briefly parked so they are consistent.</summary>
    public static VcpuRegisters Registers(VirtualMachine machine, VcpuRunner cpu) =>
        machine.WithVcpusPaused(() => cpu.Vcpu.GetRegisters());

    /// <summary>The physical address of a vCPU's virtual address, or null when paging is on and it cannot be translated.</summary>
    public static ulong? VirtualToPhysical(VirtualMachine machine, VcpuRunner cpu, ulong address) =>
        (Registers(machine, cpu).Cr0 & VcpuRegisters.Cr0PagingEnabled) == 0 ? address : null;

    /// <summary>Null when [address, address + size) is all guest RAM; else what is wrong with it.</summary>
    public static string? RamProblem(RamBlockRegistry ram, ulong address, ulong size)
    {
        if (size == 0)
        {
            return null;
        }

        // Not address + size - 1 < address: that lets address + size = 2^64 through, and the end then wraps to 0.
        if (size > ulong.MaxValue - address)
        {
            return "the range wraps around the end of the address space";
        }

        ulong end = address + size;
        ulong cursor = address;
        while (cursor < end)
        {
            RamBlock? block = ram.FindByGuestAddress(cursor);
            if (block is null)
            {
                return $"guest physical address 0x{cursor:x} is not RAM";
            }

            cursor = block.GuestEnd;
        }

        return null;
    }

    /// <summary>
    /// Copies [address, address + size) of guest physical memory into a new file (mode 0600, as QEMU creates it). An
    /// existing path — a file, or a symbolic link wherever it points — is refused (O_CREAT|O_EXCL, which never
    /// follows a link): a monitor client cannot make the VMM overwrite or truncate anything. A dump that fails half-way
    /// removes the file it created.
    /// </summary>
    public static void SaveToFile(GuestMemory memory, ulong address, ulong size, string filename, CancellationToken aborting)
    {
        FileStream file;
        try
        {
            file = new FileStream(filename, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw QmpException.Generic($"Could not open '{filename}': {e.Message}");
        }

        bool complete = false;
        try
        {
            Copy(memory, address, size, filename, file, aborting);
            complete = true;
        }
        finally
        {
            file.Dispose();
            if (!complete)
            {
                TryDelete(filename);
            }
        }
    }

    private static void TryDelete(string filename)
    {
        try
        {
            File.Delete(filename);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the error the client gets says what went wrong.
        }
    }

    private static void Copy(GuestMemory memory, ulong address, ulong size, string filename, FileStream file, CancellationToken aborting)
    {
        byte[] buffer = new byte[1 << 20];
        ulong done = 0;
        while (done < size)
        {
            aborting.ThrowIfCancellationRequested();
            int chunk = (int)Math.Min((ulong)buffer.Length, size - done);
            int read = memory.Read(address + done, buffer.AsSpan(0, chunk));
            if (read < chunk)
            {
                // RAM shrank or moved while we copied (a resize from elsewhere): say so rather than pad.
                throw QmpException.Generic($"guest physical address 0x{address + done + (ulong)read:x} stopped being RAM during the dump");
            }

            try
            {
                file.Write(buffer, 0, chunk);
            }
            catch (IOException e)
            {
                throw QmpException.Generic($"Could not write '{filename}': {e.Message}");
            }

            done += (ulong)chunk;
        }
    }
}
