using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>
/// Plain libc memory copies. Their point is where they run: inside a P/Invoke the runtime counts the thread as
/// outside managed code, so if the copy takes a userfaultfd fault on a page that has not arrived and waits for it,
/// garbage collections go on (and the thread that will place the page keeps running). The same read in managed code
/// would hold up every collection until the page arrived, with the placing thread suspended by it: a deadlock
/// (DESIGN §3).
/// </summary>
public static partial class Libc
{
    [LibraryImport("libc", EntryPoint = "memcpy")]
    private static partial nint MemcpyRaw(nint destination, nint source, nuint length);

    /// <summary>Copies <paramref name="length"/> bytes from <paramref name="source"/> to <paramref name="destination"/> in libc.</summary>
    public static void Copy(nint destination, nint source, ulong length)
    {
        if (length != 0)
        {
            MemcpyRaw(destination, source, (nuint)length);
        }
    }

    /// <summary>Copies guest memory at <paramref name="source"/> into <paramref name="destination"/> in libc.</summary>
    public static unsafe void CopyTo(nint source, Span<byte> destination)
    {
        fixed (byte* pointer = destination)
        {
            Copy((nint)pointer, source, (ulong)destination.Length);
        }
    }

    /// <summary>Copies <paramref name="source"/> to guest memory at <paramref name="destination"/> in libc.</summary>
    public static unsafe void CopyFrom(ReadOnlySpan<byte> source, nint destination)
    {
        fixed (byte* pointer = source)
        {
            Copy(destination, (nint)pointer, (ulong)source.Length);
        }
    }

    /// <summary>Reads one byte at <paramref name="address"/> in libc: makes a page resident (or waits for it) safely.</summary>
    public static unsafe byte Touch(nint address)
    {
        byte value;
        Copy((nint)(&value), address, 1);
        return value;
    }
}
