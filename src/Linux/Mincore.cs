using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>mincore(2): which pages of a mapping are resident — how tests and diagnostics see memory given back.</summary>
public static partial class Mincore
{
    [LibraryImport("libc", EntryPoint = "mincore", SetLastError = true)]
    private static unsafe partial int MincoreRaw(nint address, nuint length, byte* vector);

    /// <summary>
    /// Fills one byte per <see cref="Environment.SystemPageSize"/> page of [address, address+length); bit 0 set means
    /// resident. <paramref name="address"/> must be page-aligned.
    /// </summary>
    public static unsafe void Query(nint address, ulong length, Span<byte> vector)
    {
        ulong pages = (length + (ulong)Environment.SystemPageSize - 1) / (ulong)Environment.SystemPageSize;
        if ((ulong)vector.Length < pages)
        {
            throw new ArgumentException($"mincore needs {pages} bytes of vector, got {vector.Length}", nameof(vector));
        }

        fixed (byte* pointer = vector)
        {
            if (MincoreRaw(address, (nuint)length, pointer) != 0)
            {
                throw LinuxException.FromLastError("mincore");
            }
        }
    }

    /// <summary>How many base pages of the range are resident.</summary>
    public static ulong CountResident(nint address, ulong length)
    {
        ulong pages = (length + (ulong)Environment.SystemPageSize - 1) / (ulong)Environment.SystemPageSize;
        byte[] vector = new byte[pages];
        Query(address, length, vector);
        ulong resident = 0;
        foreach (byte entry in vector)
        {
            resident += (ulong)(entry & 1);
        }

        return resident;
    }
}
