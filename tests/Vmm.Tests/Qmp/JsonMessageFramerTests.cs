using System.Text;
using Vmm.Qmp;

namespace Vmm.Tests.Qmp;

/// <summary>The stream framer on its own: message boundaries, resynchronization after bad input, and the limits.</summary>
public class JsonMessageFramerTests
{
    [Fact]
    public void FindsValuesBackToBackWithOrWithoutWhitespace()
    {
        Assert.Equal(["{\"a\":1}", "{\"b\":[2,{}]}", "[]", "{ \"c\" : \"}\" }"], Messages("{\"a\":1}{\"b\":[2,{}]}\r\n[]\t  { \"c\" : \"}\" }"));
    }

    [Fact]
    public void ValuesSplitAcrossReadsComeOutWhole()
    {
        var framer = new JsonMessageFramer();
        var frames = new List<JsonFrame>();
        foreach (byte b in Encoding.UTF8.GetBytes("{\"execute\": \"x\\\"}\"}{\"n\": 1}"))
        {
            framer.Feed([b], frames);
        }

        Assert.Equal(["{\"execute\": \"x\\\"}\"}", "{\"n\": 1}"], frames.Select(f => Encoding.UTF8.GetString(f.Message!)));
    }

    [Fact]
    public void TopLevelScalarsAreMessagesToo()
    {
        // They are then refused as "QMP input must be a JSON object" by the request parser, as QEMU does.
        Assert.Equal(["42", "true", "\"str ing\"", "nul"], Messages("42 true\"str ing\"nul\n"));
    }

    [Fact]
    public void ALexicalErrorSkipsToTheNextLineBreak()
    {
        List<JsonFrame> frames = Frames("{\"a\": @ garbage \"with quote\n{\"ok\": 1}");
        Assert.Equal("JSON parse error, invalid character '@'", frames[0].Error);
        Assert.Equal("{\"ok\": 1}", Encoding.UTF8.GetString(frames[1].Message!));
        Assert.Equal(2, frames.Count);
    }

    [Fact]
    public void ALexicalErrorSkipsToTheNextOpeningBrace()
    {
        List<JsonFrame> frames = Frames([0xFF, 0x41, 0x42, .. "{\"ok\": 1}"u8]);
        Assert.Equal("JSON parse error, invalid byte 0xff", frames[0].Error);
        Assert.Equal("{\"ok\": 1}", Encoding.UTF8.GetString(frames[1].Message!));
    }

    [Fact]
    public void StrayAndMismatchedClosersAreErrors()
    {
        List<JsonFrame> frames = Frames("}\n{\"a\": [1}\n[1]");
        Assert.Equal("JSON parse error, stray '}'", frames[0].Error);
        Assert.Equal("JSON parse error, '}' where ']' was expected", frames[1].Error);
        Assert.Equal("[1]", Encoding.UTF8.GetString(frames[2].Message!));
    }

    [Fact]
    public void ControlCharactersInStringsAreErrors()
    {
        List<JsonFrame> frames = Frames("{\"a\": \"x\ty\"}\n{}");
        Assert.Equal("JSON parse error, control character 0x09 in string", frames[0].Error);
        Assert.Equal("{}", Encoding.UTF8.GetString(frames[1].Message!));
    }

    [Fact]
    public void TooDeepIsReportedOnceAndTheValueSkippedWhole()
    {
        var framer = new JsonMessageFramer(maxDepth: 4);
        var frames = new List<JsonFrame>();
        framer.Feed(Encoding.UTF8.GetBytes("[[[[[[[[1]]]]]]]]{\"next\": [[[1]]]}"), frames);
        Assert.Equal(2, frames.Count);
        Assert.Equal("JSON parse error, nesting depth limit (4) exceeded", frames[0].Error);
        Assert.Equal("{\"next\": [[[1]]]}", Encoding.UTF8.GetString(frames[1].Message!));
    }

    [Fact]
    public void TooLargeIsFatalAndEverythingAfterIsIgnored()
    {
        var framer = new JsonMessageFramer(maxMessageBytes: 16);
        var frames = new List<JsonFrame>();
        framer.Feed(Encoding.UTF8.GetBytes("{\"a\": \"0123456789abcdef\"}{}"), frames);
        JsonFrame only = Assert.Single(frames);
        Assert.True(only.Fatal);
        Assert.Contains("size limit", only.Error);
        Assert.True(framer.IsClosed);
    }

    [Fact]
    public void AMessageExactlyAtTheLimitIsFine()
    {
        var framer = new JsonMessageFramer(maxMessageBytes: 10);
        var frames = new List<JsonFrame>();
        framer.Feed(Encoding.UTF8.GetBytes("{\"a\":\"12\"}  {}"), frames);
        Assert.Equal(["{\"a\":\"12\"}", "{}"], frames.Select(f => Encoding.UTF8.GetString(f.Message!)));
    }

    [Fact]
    public void RandomInputNeverThrowsAndAQuotedLineBreakAlwaysResynchronizes()
    {
        var random = new Random(1234);
        var framer = new JsonMessageFramer(maxMessageBytes: 1 << 16);
        var frames = new List<JsonFrame>();
        for (int i = 0; i < 2000 && !framer.IsClosed; i++)
        {
            byte[] junk = new byte[random.Next(1, 200)];
            random.NextBytes(junk);
            framer.Feed(junk, frames);

            // Whatever state the junk left (inside a string, a value, a scalar, recovery), a quote and a line break
            // force a resynchronization, and the probe after them comes out whole.
            frames.Clear();
            framer.Feed("\n\"\n{\"probe\": 1}"u8, frames);
            Assert.False(framer.IsClosed);
            Assert.Equal("{\"probe\": 1}", Encoding.UTF8.GetString(frames[^1].Message!));
        }
    }

    private static string[] Messages(string input) => [.. Frames(input).Select(f => f.Message is { } m ? Encoding.UTF8.GetString(m) : $"error: {f.Error}")];

    private static List<JsonFrame> Frames(string input) => Frames(Encoding.UTF8.GetBytes(input));

    private static List<JsonFrame> Frames(byte[] input)
    {
        var framer = new JsonMessageFramer();
        var frames = new List<JsonFrame>();
        framer.Feed(input, frames);
        return frames;
    }
}
