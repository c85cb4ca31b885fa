using Vmm.Loading;
using Vmm.Tests.Infrastructure;

namespace Vmm.Tests;

/// <summary>Bad guest images: one clear line on stderr, status 2, never a stack trace, nothing on stdout.</summary>
public class LoaderErrorTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("vmm-loader-").FullName;

    public static TheoryData<string, string> BadImages => new()
    {
        { "missing", "not found" },
        { "empty", "is empty" },
        { "huge", "only" },
        { "directory", "is a directory" },
    };

    [Theory]
    [MemberData(nameof(BadImages))]
    public void BadImageIsOneLineErrorAndStatusTwo(string kind, string expected)
    {
        string path = Make(kind);
        VmmResult result = VmmProcess.Run("run", path);

        Assert.Equal(2, result.ExitCode);
        Assert.Empty(result.StdoutBytes);
        string line = Assert.Single(result.StderrLines);
        Assert.StartsWith("vmm: error: ", line);
        Assert.Contains(expected, line);
        Assert.DoesNotContain("   at ", result.Stderr);
    }

    [Theory]
    [MemberData(nameof(BadImages))]
    public void LoaderRejectsBadImageWithGuestImageException(string kind, string expected)
    {
        var error = Assert.Throws<GuestImageException>(() => GuestImage.Load(Make(kind), GuestImage.DefaultLoadAddress, 16 << 20));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void ImageMayFillEverythingUpToOneMiB()
    {
        string path = Path.Combine(dir, "exact.bin");
        File.WriteAllBytes(path, new byte[GuestImage.RealModeLimit - GuestImage.DefaultLoadAddress]);
        Assert.Equal(GuestImage.DefaultLoadAddress, GuestImage.Load(path, GuestImage.DefaultLoadAddress, 16 << 20).LoadAddress);

        File.WriteAllBytes(path, new byte[GuestImage.RealModeLimit - GuestImage.DefaultLoadAddress + 1]);
        Assert.Throws<GuestImageException>(() => GuestImage.Load(path, GuestImage.DefaultLoadAddress, 16 << 20));
    }

    [Fact]
    public void ImageMustFitInSmallRam()
    {
        string path = Path.Combine(dir, "small-ram.bin");
        File.WriteAllBytes(path, new byte[0x9000]);
        var error = Assert.Throws<GuestImageException>(() => GuestImage.Load(path, 0x7C00, 0x10000));
        Assert.Contains("0x10000", error.Message);
    }

    private string Make(string kind)
    {
        string path = Path.Combine(dir, kind + ".bin");
        switch (kind)
        {
            case "empty":
                File.WriteAllBytes(path, []);
                break;
            case "huge":
                File.WriteAllBytes(path, new byte[4 << 20]);
                break;
            case "directory":
                Directory.CreateDirectory(path);
                break;
        }

        return path;
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);
}
