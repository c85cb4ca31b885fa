namespace Vmm.CpuSemantics.Tests.Running;

/// <summary>Paths in the checkout, found from the test assembly by walking up to Vmm.sln.</summary>
public static class RepositoryPaths
{
    private static readonly Lazy<string> LazyRoot = new(FindRoot);

    public static string Root => LazyRoot.Value;

    /// <summary>The vmm entry point as `make build` (Release) leaves it; a clear failure when it is not there.</summary>
    public static string VmmDll
    {
        get
        {
            var path = Path.Combine(Root, "artifacts", "bin", "Vmm", "release", "dotnet-vmm.dll");
            return File.Exists(path)
                ? path
                : throw new FileNotFoundException($"{path} is missing: build vmm first with 'make build' (or 'make setup')");
        }
    }

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
