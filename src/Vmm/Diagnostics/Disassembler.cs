using System.Text;
using Iced.Intel;
using Vmm.Accelerator.State;
using Vmm.Machine;

namespace Vmm.Diagnostics;

/// <summary>Decodes guest instructions at CS:IP with Iced, in the bitness the code segment says.</summary>
public sealed class Disassembler(GuestMemory memory)
{
    private readonly NasmFormatter formatter = new() { Options = { HexPrefix = "0x", HexSuffix = null, UppercaseHex = false } };

    /// <summary>
    /// Up to <paramref name="count"/> instructions starting at the current CS:IP, one line each:
    /// "CS:IP  bytes  mnemonic". The guest runs without paging here, so linear = physical.
    /// </summary>
    public IReadOnlyList<string> DisassembleAt(VcpuRegisters registers, int count)
    {
        int bitness = registers.CodeBitness;
        Segment cs = registers.Cs;
        ulong rip = registers.General.Rip;
        ulong linear = registers.InstructionPointerLinear;
        byte[] code = new byte[count * 15];
        int available = memory.Read(linear, code);
        var lines = new List<string>(count);
        if (available == 0)
        {
            lines.Add($"{cs.Selector:x4}:{rip:x4}  <no RAM at linear 0x{linear:x}>");
            return lines;
        }

        var decoder = Iced.Intel.Decoder.Create(bitness, new ByteArrayCodeReader(code, 0, available), rip);
        var text = new StringOutput();
        var bytes = new StringBuilder();
        for (int i = 0; i < count && decoder.IP < rip + (ulong)available; i++)
        {
            ulong ip = decoder.IP;
            decoder.Decode(out Instruction instruction);
            formatter.Format(instruction, text);
            bytes.Clear();
            int start = (int)(ip - rip);
            for (int b = 0; b < instruction.Length && start + b < available; b++)
            {
                bytes.Append(code[start + b].ToString("x2"));
            }

            string mnemonic = instruction.IsInvalid ? "(bad)" : text.ToStringAndReset();
            text.Reset();
            lines.Add($"{cs.Selector:x4}:{ip:x4}  {bytes,-16}  {mnemonic}");
            if (instruction.IsInvalid)
            {
                break;
            }
        }

        return lines;
    }
}
