namespace Vmm.Tests.Infrastructure;

/// <summary>
/// The classic migration check (DESIGN §7): the dirty guest increments the first byte of every 4 KiB page in order,
/// forever. With the guest stopped those bytes are all equal, except for one step where a run of v+1 is followed
/// by a run of v (mod 256). Anything else is lost or stale memory.
/// </summary>
public static class DirtyConsistency
{
    public const ulong PageSize = 4096;

    /// <summary>The first byte of each page in [start, start + length).</summary>
    public static byte[] FirstBytes(Func<ulong, byte> readByte, ulong start, ulong length)
    {
        byte[] bytes = new byte[length / PageSize];
        for (int i = 0; i < bytes.Length; i++)
        {
            bytes[i] = readByte(start + ((ulong)i * PageSize));
        }

        return bytes;
    }

    /// <summary>Null when consistent; otherwise a description of the first page that breaks the rule.</summary>
    public static string? Check(ReadOnlySpan<byte> firstBytes)
    {
        if (firstBytes.Length == 0)
        {
            return "no pages";
        }

        byte head = firstBytes[0];
        bool stepped = false;
        for (int i = 1; i < firstBytes.Length; i++)
        {
            byte expected = stepped ? unchecked((byte)(head - 1)) : head;
            if (firstBytes[i] == expected)
            {
                continue;
            }

            if (!stepped && firstBytes[i] == unchecked((byte)(head - 1)))
            {
                stepped = true;
                continue;
            }

            return $"page {i} holds {firstBytes[i]}, expected {expected} (page 0 holds {head}{(stepped ? ", after the step" : string.Empty)})";
        }

        return null;
    }
}
