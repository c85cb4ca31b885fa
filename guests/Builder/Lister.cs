using System.Text;
using Iced.Intel;

namespace Vmm.Guests;

/// <summary>
/// Prints an assembled guest as an annotated listing: address, bytes, NASM-syntax instruction,
/// with label names for branch targets and addresses. Regions marked as data are dumped, not
/// disassembled, so the decoder never runs off into strings or descriptor tables.
/// </summary>
/// <remarks>
/// This is how guests are checked without running them: read the prefixes (0x67 on every
/// 32-bit addressed access in unreal-mode code), the jump targets and the data bytes.
/// </remarks>
public static class Lister
{
    private const int BytesColumn = 28;

    public static void Write(IGuest guest, GuestImage image, TextWriter output)
    {
        var bytes = image.Bytes;
        var start = (ulong)GuestAssembler.LoadAddress;
        var end = start + (ulong)bytes.Length;
        output.WriteLine($"; {guest.Name}: {guest.Description}");
        output.WriteLine($"; {bytes.Length} bytes at 0x{start:X4}..0x{end - 1:X4}");

        var formatter = new NasmFormatter(new SymbolResolver(image.Symbols));
        formatter.Options.FirstOperandCharIndex = 8;
        formatter.Options.HexPrefix = "0x";
        formatter.Options.HexSuffix = "";
        formatter.Options.UppercaseHex = true;
        formatter.Options.ShowBranchSize = true;

        // Region boundaries: every symbol; each region is code or data as its first symbol says.
        var regions = image.Symbols
            .GroupBy(s => s.Address)
            .OrderBy(grp => grp.Key)
            .ToList();
        for (var r = 0; r < regions.Count; r++)
        {
            var from = regions[r].Key;
            var to = r + 1 < regions.Count ? regions[r + 1].Key : end;
            foreach (var symbol in regions[r])
            {
                output.WriteLine($"{symbol.Name}:");
            }

            if (regions[r].Any(s => s.IsData))
            {
                WriteData(bytes, from, to, output);
            }
            else
            {
                WriteCode(bytes, from, to, formatter, output);
            }
        }
    }

    private static void WriteCode(byte[] bytes, ulong from, ulong to, Formatter formatter, TextWriter output)
    {
        var offset = (int)(from - GuestAssembler.LoadAddress);
        var length = (int)(to - from);
        var decoder = Iced.Intel.Decoder.Create(16, new ByteArrayCodeReader(bytes, offset, length));
        decoder.IP = from;
        var text = new StringOutput();
        while (decoder.IP < to)
        {
            var ip = decoder.IP;
            var instruction = decoder.Decode();
            if (instruction.IsInvalid)
            {
                // Not code after all (or cut off by the next label): show what is left as data.
                WriteData(bytes, ip, to, output);
                return;
            }

            formatter.Format(instruction, text);
            WriteLine(output, ip, bytes.AsSpan((int)(ip - GuestAssembler.LoadAddress), instruction.Length), text.ToStringAndReset());
        }
    }

    private static void WriteData(byte[] bytes, ulong from, ulong to, TextWriter output)
    {
        for (var address = from; address < to; address += 8)
        {
            var count = (int)Math.Min(8, to - address);
            var chunk = bytes.AsSpan((int)(address - GuestAssembler.LoadAddress), count);
            WriteLine(output, address, chunk, "db " + Quote(chunk));
        }
    }

    private static void WriteLine(TextWriter output, ulong address, ReadOnlySpan<byte> bytes, string text)
    {
        var hex = Convert.ToHexString(bytes);
        var spaced = new StringBuilder();
        for (var i = 0; i < hex.Length; i += 2)
        {
            spaced.Append(hex, i, 2).Append(' ');
        }

        output.WriteLine($"    {address:X4}  {spaced.ToString().PadRight(BytesColumn)}{text}");
    }

    /// <summary>
    /// Data as NASM would write it: printable runs of 3 or more as a quoted string (shorter ones
    /// are more likely addresses than text), everything else as hex bytes.
    /// </summary>
    private static string Quote(ReadOnlySpan<byte> bytes)
    {
        var parts = new List<string>();
        var i = 0;
        while (i < bytes.Length)
        {
            var run = 0;
            while (i + run < bytes.Length && IsPrintable(bytes[i + run]))
            {
                run++;
            }

            if (run >= 3)
            {
                parts.Add($"'{Encoding.ASCII.GetString(bytes.Slice(i, run))}'");
                i += run;
            }
            else
            {
                parts.Add($"0x{bytes[i]:X2}");
                i++;
            }
        }

        return string.Join(",", parts);
    }

    private static bool IsPrintable(byte b) => b is >= 0x20 and < 0x7F && b != (byte)'\'';

    /// <summary>Names branch targets and memory operands after labels; immediates only when they name data (strings, tables).</summary>
    private sealed class SymbolResolver(IReadOnlyList<GuestSymbol> symbols) : ISymbolResolver
    {
        private readonly Dictionary<ulong, GuestSymbol> _byAddress = symbols
            .GroupBy(s => s.Address)
            .ToDictionary(grp => grp.Key, grp => grp.First());

        public bool TryGetSymbol(in Instruction instruction, int operand, int instructionOperand, ulong address, int addressSize, out SymbolResult symbol)
        {
            symbol = default;
            if (!_byAddress.TryGetValue(address, out var found))
            {
                return false;
            }

            var kind = instructionOperand >= 0 ? instruction.GetOpKind(instructionOperand) : OpKind.Memory;
            var isImmediate = kind is OpKind.Immediate8 or OpKind.Immediate16 or OpKind.Immediate32
                or OpKind.Immediate8to16 or OpKind.Immediate8to32;
            if (isImmediate && !found.IsData)
            {
                // mov sp, 0x7C00 is a number, not a reference to "start".
                return false;
            }

            symbol = new SymbolResult(address, found.Name);
            return true;
        }
    }
}
