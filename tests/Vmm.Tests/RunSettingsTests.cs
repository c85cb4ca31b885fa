using Serilog.Events;
using Vmm.Configuration;

namespace Vmm.Tests;

/// <summary>Option validation: typed values out, every problem reported at once.</summary>
public class RunSettingsTests
{
    [Fact]
    public void DefaultsAreSixteenMiBAtTheBootSectorAddressOnStdio()
    {
        RunSettings settings = RunSettings.From(new VmmOptions());
        Assert.Equal(16ul << 20, settings.MemorySize);
        Assert.Equal(0x7C00ul, settings.LoadAddress);
        Assert.Equal(SerialTargetKind.Stdio, settings.Serial.Kind);
        Assert.Equal(LogEventLevel.Warning, settings.LogLevel);
        Assert.False(settings.Trace);
    }

    [Theory]
    [InlineData("16M", 16ul << 20)]
    [InlineData("256MiB", 256ul << 20)]
    [InlineData("3G", 3ul << 30)]
    [InlineData("1048576", 1ul << 20)]
    [InlineData("0x200000", 2ul << 20)]
    [InlineData("4096K", 4ul << 20)]
    public void MemorySizesParse(string text, ulong expected)
    {
        Assert.Equal(expected, RunSettings.From(new VmmOptions { Memory = text }).MemorySize);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("512K")]
    [InlineData("3073M")]
    [InlineData("1M1")]
    [InlineData("-1M")]
    [InlineData("")]
    [InlineData("18446744073709551615G")]
    public void BadMemorySizesAreRejected(string text)
    {
        var error = Assert.Throws<OptionsException>(() => RunSettings.From(new VmmOptions { Memory = text }));
        Assert.StartsWith("memory:", Assert.Single(error.Problems));
    }

    [Fact]
    public void EveryProblemIsReportedTogether()
    {
        var error = Assert.Throws<OptionsException>(() => RunSettings.From(new VmmOptions
        {
            Memory = "huge",
            LoadAddress = "here",
            Serial = "tcp:1",
            LogLevel = "loud",
        }));
        Assert.Equal(4, error.Problems.Count);
    }

    [Theory]
    [InlineData("stdio", SerialTargetKind.Stdio, null)]
    [InlineData("none", SerialTargetKind.None, null)]
    [InlineData("file:/tmp/x.txt", SerialTargetKind.File, "/tmp/x.txt")]
    public void SerialTargetsParse(string text, SerialTargetKind kind, string? path)
    {
        Assert.True(SerialTarget.TryParse(text, out SerialTarget target));
        Assert.Equal(kind, target.Kind);
        Assert.Equal(path, target.Path);
    }

    [Theory]
    [InlineData("file:")]
    [InlineData("stdout")]
    public void BadSerialTargetsAreRejected(string text) => Assert.False(SerialTarget.TryParse(text, out _));

    [Fact]
    public void LoadAddressMustBeBelowOneMiB()
    {
        Assert.Equal(0xFFFF0ul, RunSettings.From(new VmmOptions { LoadAddress = "0xffff0" }).LoadAddress);
        Assert.Throws<OptionsException>(() => RunSettings.From(new VmmOptions { LoadAddress = "0x100000" }));
    }
}
