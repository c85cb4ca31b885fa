namespace Vmm.Tests.Infrastructure;

/// <summary>Paths in the checkout: guest images built by `make guests`, fixtures, the VMM's own build.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string VmmDll => Path.Combine(AppContext.BaseDirectory, "dotnet-vmm.dll");

    /// <summary>guests/bin/NAME.bin; a clear failure when the images were not built.</summary>
    public static string Guest(string name)
    {
        string path = Path.Combine(Root, "guests", "bin", $"{name}.bin");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"guest image {path} is missing: run 'make guests' (make test does it)");
        }

        return path;
    }

    public static string Fixture(params string[] parts) => Path.Combine([Root, "tests", "fixtures", .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Vmm.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("cannot find the repository root (Vmm.sln) above " + AppContext.BaseDirectory);
    }
}
