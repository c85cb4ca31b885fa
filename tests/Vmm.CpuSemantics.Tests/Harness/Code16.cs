using StringBuilder = System.Text.StringBuilder;
using Iced.Intel;
using IcedCode = Iced.Intel.Code;

namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>16-bit machine code for cases, encoded and disassembled with Iced.</summary>
public static class Code16
{
    /// <summary>Encodes <paramref name="instructions"/> back to back, as 16-bit code at offset 0.</summary>
    public static byte[] Encode(params Instruction[] instructions)
    {
        var writer = new ByteWriter();
        var encoder = Encoder.Create(16, writer);
        ulong ip = 0;
        foreach (var instruction in instructions)
        {
            if (!encoder.TryEncode(instruction, ip, out var length, out var error))
            {
                throw new InvalidOperationException($"cannot encode {instruction}: {error}");
            }

            ip += (ulong)length;
        }

        return writer.Bytes.ToArray();
    }

    /// <summary>
    /// A branch instruction (Jcc, LOOPcc, JCXZ, …) whose target is 3 bytes past its own end, as a
    /// <see cref="StubKind.Branch"/> stub wants it. Branch forms have a fixed length, so the length measured with a
    /// provisional target is the final one.
    /// </summary>
    public static byte[] EncodeBranch(IcedCode code)
    {
        var provisional = Encode(Instruction.CreateBranch(code, 0x10));
        return Encode(Instruction.CreateBranch(code, (ulong)provisional.Length + 3));
    }

    /// <summary>NASM-style disassembly of <paramref name="code"/> (as at offset 0), instructions separated by " ; ".</summary>
    public static string Disassemble(byte[] code)
    {
        var decoder = Decoder.Create(16, new ByteArrayCodeReader(code), ip: 0);
        var formatter = new NasmFormatter();
        formatter.Options.HexPrefix = "0x";
        formatter.Options.HexSuffix = null;
        formatter.Options.SpaceAfterOperandSeparator = true;
        var output = new StringOutput();
        var parts = new List<string>();
        while (decoder.IP < (ulong)code.Length)
        {
            decoder.Decode(out var instruction);
            formatter.Format(instruction, output);
            parts.Add(output.ToStringAndReset());
        }

        return string.Join(" ; ", parts);
    }

    public static string Hex(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder(bytes.Length * 3);
        foreach (var b in bytes)
        {
            if (text.Length > 0)
            {
                text.Append(' ');
            }

            text.Append(b.ToString("X2"));
        }

        return text.ToString();
    }

    private sealed class ByteWriter : CodeWriter
    {
        public List<byte> Bytes { get; } = [];

        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}
