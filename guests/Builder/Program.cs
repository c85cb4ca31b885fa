namespace Vmm.Guests;

/// <summary>
/// guest-builder: assembles the test guests (never committed as binaries) into a directory,
/// or prints the disassembly of some of them.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        try
        {
            return args switch
            {
                [] or ["-h" or "--help"] => Usage(Console.Out, 0),
                ["--list", .. var names] => List(names),
                [var dir] when !dir.StartsWith('-') => BuildAll(dir),
                _ => Usage(Console.Error, 2),
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            Console.Error.WriteLine($"guest-builder: {e.Message}");
            return 1;
        }
    }

    private static int BuildAll(string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (var guest in GuestCatalog.All)
        {
            var image = guest.Build();
            File.WriteAllBytes(Path.Combine(dir, guest.Name + ".bin"), image.Bytes);
            Console.WriteLine($"{guest.Name,-14} {image.Bytes.Length,5} bytes");
        }

        return 0;
    }

    private static int List(string[] names)
    {
        var guests = new List<IGuest>();
        foreach (var name in names)
        {
            var guest = GuestCatalog.Find(name);
            if (guest is null)
            {
                Console.Error.WriteLine($"guest-builder: no guest named '{name}'");
                return Usage(Console.Error, 2);
            }

            guests.Add(guest);
        }

        if (guests.Count == 0)
        {
            guests.AddRange(GuestCatalog.All);
        }

        for (var i = 0; i < guests.Count; i++)
        {
            if (i > 0)
            {
                Console.WriteLine();
            }

            Lister.Write(guests[i], guests[i].Build(), Console.Out);
        }

        return 0;
    }

    private static int Usage(TextWriter output, int status)
    {
        output.WriteLine("usage: guest-builder OUTDIR            write OUTDIR/NAME.bin for every guest");
        output.WriteLine("       guest-builder --list [NAME...]  print the disassembly of the named guests (default: all)");
        output.WriteLine();
        output.WriteLine("guests:");
        foreach (var guest in GuestCatalog.All)
        {
            output.WriteLine($"  {guest.Name,-14} {guest.Description}");
        }

        return status;
    }
}
