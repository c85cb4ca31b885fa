using System.Text;
using Vmm.Accelerator;
using Vmm.Accelerator.State;

namespace Vmm.Diagnostics;

/// <summary>
/// The text a user gets when a guest dies: why, every register a real-mode programmer needs, and the code at CS:IP.
/// </summary>
public sealed class CrashReporter(Disassembler disassembler)
{
    public string Report(IVcpu vcpu, string reason)
    {
        var report = new StringBuilder();
        report.AppendLine($"guest crashed on vCPU {vcpu.Id}: {reason}");
        VcpuRegisters registers;
        try
        {
            registers = vcpu.GetRegisters();
        }
        catch (Exception e)
        {
            report.AppendLine($"  (registers unavailable: {e.Message})");
            return report.ToString().TrimEnd();
        }

        AppendRegisters(report, registers);
        report.AppendLine($"code at {registers.Cs.Selector:x4}:{registers.General.Rip:x4} (linear 0x{registers.Cs.Base + registers.General.Rip:x}, {registers.CodeBitness}-bit):");
        foreach (string line in disassembler.DisassembleAt(registers, 6))
        {
            report.AppendLine($"  {line}");
        }

        return report.ToString().TrimEnd();
    }

    public static void AppendRegisters(StringBuilder report, VcpuRegisters s)
    {
        GeneralRegisters r = s.General;
        report.AppendLine($"  EAX={r.Rax:x8} EBX={r.Rbx:x8} ECX={r.Rcx:x8} EDX={r.Rdx:x8}");
        report.AppendLine($"  ESI={r.Rsi:x8} EDI={r.Rdi:x8} EBP={r.Rbp:x8} ESP={r.Rsp:x8}");
        report.AppendLine($"  EIP={r.Rip:x8} EFLAGS={r.Rflags:x8} [{Flags(r.Rflags)}]");
        AppendSegment(report, "CS", s.Cs);
        AppendSegment(report, "DS", s.Ds);
        AppendSegment(report, "ES", s.Es);
        AppendSegment(report, "SS", s.Ss);
        AppendSegment(report, "FS", s.Fs);
        AppendSegment(report, "GS", s.Gs);
        AppendSegment(report, "TR", s.Tr);
        AppendSegment(report, "LDT", s.Ldt);
        report.AppendLine($"  GDT=     {s.Gdt.Base:x8} {s.Gdt.Limit:x4}   IDT=     {s.Idt.Base:x8} {s.Idt.Limit:x4}");
        report.AppendLine($"  CR0={s.Cr0:x8} CR2={s.Cr2:x8} CR3={s.Cr3:x8} CR4={s.Cr4:x8} EFER={s.Efer:x8}");
    }

    private static void AppendSegment(StringBuilder report, string name, in Segment segment) =>
        report.AppendLine($"  {name,-3}={segment.Selector:x4} base={segment.Base:x8} limit={segment.Limit:x8} type={segment.Type:x} dpl={segment.Dpl} db={Bit(segment.DefaultBig)} g={Bit(segment.Granularity)} p={Bit(segment.Present)}");

    private static int Bit(bool value) => value ? 1 : 0;

    private static string Flags(ulong rflags)
    {
        (int Bit, string Name)[] names = [(11, "OF"), (10, "DF"), (9, "IF"), (7, "SF"), (6, "ZF"), (4, "AF"), (2, "PF"), (0, "CF")];
        return string.Join(' ', names.Where(f => (rflags & (1ul << f.Bit)) != 0).Select(f => f.Name));
    }
}
