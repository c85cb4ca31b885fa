namespace Vmm.Loading;

/// <summary>
/// A flat real-mode binary and where it goes. Real mode reaches the first 1 MiB, so the image must fit between its
/// load address and 1 MiB, and inside guest RAM.
/// </summary>
public sealed record GuestImage(string Path, byte[] Bytes, ulong LoadAddress)
{
    public const ulong DefaultLoadAddress = 0x7C00;
    public const ulong RealModeLimit = 0x10_0000;

    /// <summary>Reads and checks an image; every failure is a <see cref="GuestImageException"/> with one clear line.</summary>
    public static GuestImage Load(string path, ulong loadAddress, ulong memorySize)
    {
        byte[] bytes;
        try
        {
            if (Directory.Exists(path))
            {
                throw new GuestImageException($"guest image '{path}' is a directory, not a file");
            }

            bytes = File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            throw new GuestImageException($"guest image '{path}' not found");
        }
        catch (DirectoryNotFoundException)
        {
            throw new GuestImageException($"guest image '{path}' not found");
        }
        catch (UnauthorizedAccessException)
        {
            throw new GuestImageException($"cannot read guest image '{path}': permission denied");
        }
        catch (IOException e)
        {
            throw new GuestImageException($"cannot read guest image '{path}': {e.Message}");
        }

        if (bytes.Length == 0)
        {
            throw new GuestImageException($"guest image '{path}' is empty");
        }

        ulong limit = Math.Min(RealModeLimit, memorySize);
        if (loadAddress >= limit)
        {
            throw new GuestImageException($"load address 0x{loadAddress:x} is outside real-mode RAM (below 0x{limit:x})");
        }

        ulong room = limit - loadAddress;
        if ((ulong)bytes.Length > room)
        {
            throw new GuestImageException(
                $"guest image '{path}' is {bytes.Length} bytes, but only {room} bytes fit between load address 0x{loadAddress:x} and 0x{limit:x}");
        }

        return new GuestImage(path, bytes, loadAddress);
    }
}
