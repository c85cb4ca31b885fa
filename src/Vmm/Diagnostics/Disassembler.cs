using System.Text;
using Iced.Intel;
using Vmm.Linux.Kvm;
using Vmm.Machine;

namespace Vmm.Diagnostics;

/// <summary>Decodes guest instructions at CS:IP with Iced, in the bitness the code segment says.</summary>
public sealed class Disassembler(GuestMemory memory)
{
    private readonly NasmFormatter formatter = new() { Options = { HexPrefix = "0x", HexSuffix = null, UppercaseHex = false } };

    public static int BitnessOf(in KvmSregs sregs) => sregs.Cs.L != 0 ? 64 : sregs.Cs.Db != 0 ? 32 : 16;

    /// <summary>
    /// Up to <paramref name="count"/> instructions starting at the current CS:IP, one line each:
    /// "CS:IP  bytes  mnemonic". The guest runs without paging here, so linear = physical.
    /// </summary>
    public IReadOnlyList<string> DisassembleAt(in KvmRegs regs, in KvmSregs sregs, int count)
    {
        int bitness = BitnessOf(sregs);
        ulong linear = sregs.Cs.Base + (bitness == 16 ? regs.Rip & 0xFFFF : regs.Rip);
        byte[] code = new byte[count * 15];
        int available = memory.Read(linear, code);
        var lines = new List<string>(count);
        if (available == 0)
        {
            lines.Add($"{sregs.Cs.Selector:x4}:{regs.Rip:x4}  <no RAM at linear 0x{linear:x}>");
            return lines;
        }

        var decoder = Iced.Intel.Decoder.Create(bitness, new ByteArrayCodeReader(code, 0, available), regs.Rip);
        var text = new StringOutput();
        var bytes = new StringBuilder();
        for (int i = 0; i < count && decoder.IP < regs.Rip + (ulong)available; i++)
        {
            ulong ip = decoder.IP;
            decoder.Decode(out Instruction instruction);
            formatter.Format(instruction, text);
            bytes.Clear();
            int start = (int)(ip - regs.Rip);
            for (int b = 0; b < instruction.Length && start + b < available; b++)
            {
                bytes.Append(code[start + b].ToString("x2"));
            }

            string mnemonic = instruction.IsInvalid ? "(bad)" : text.ToStringAndReset();
            text.Reset();
            lines.Add($"{sregs.Cs.Selector:x4}:{ip:x4}  {bytes,-16}  {mnemonic}");
            if (instruction.IsInvalid)
            {
                break;
            }
        }

        return lines;
    }
}
