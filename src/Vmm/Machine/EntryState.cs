using Vmm.Accelerator.State;

namespace Vmm.Machine;

/// <summary>
/// The vCPU state a guest image is entered with, on either accelerator and after every system_reset: a CPU fresh
/// from reset (real mode, 64 KiB segments, GDTR and IDTR at 0 with limit 0xFFFF, CR0 = 0x60000010, EFER 0, no event
/// pending, FPU initialized) whose CS:IP points at the image, with DL = 0x80 (boot drive) and SP = 0x7C00. The TSC is
/// not part of it: it keeps counting, so guest time never goes backwards across a reset.
/// </summary>
public static class EntryState
{
    /// <summary>CR0 after reset: CD, NW and ET set (Intel SDM, table 9-1).</summary>
    public const ulong ResetCr0 = 0x6000_0010;

    /// <summary>IA32_APIC_BASE after reset: the local APIC at 0xFEE00000, enabled, this CPU the bootstrap processor.</summary>
    public const ulong ResetApicBase = 0xFEE0_0900;

    /// <summary>The boot drive number a BIOS passes in DL.</summary>
    public const ulong BootDrive = 0x80;

    /// <summary>Entry at <paramref name="loadAddress"/>: CS = 0 below 64 KiB, else CS = address &gt;&gt; 4 and IP = address &amp; 0xF.</summary>
    public static VcpuState For(ulong loadAddress)
    {
        ushort codeSegment = loadAddress <= 0xFFFF ? (ushort)0 : (ushort)(loadAddress >> 4);
        Segment data = Segment.RealMode(0);
        return new VcpuState
        {
            Registers = new VcpuRegisters
            {
                General = new GeneralRegisters
                {
                    Rip = loadAddress - ((ulong)codeSegment << 4),
                    Rflags = GeneralRegisters.ReservedOne, // IF clear
                    Rdx = BootDrive,
                    Rsp = Loading.GuestImage.DefaultLoadAddress,
                },
                Cs = Segment.RealMode(codeSegment, code: true),
                Ds = data,
                Es = data,
                Fs = data,
                Gs = data,
                Ss = data,
                // As the CPU leaves them after reset: a busy 32-bit TSS and an LDT, both at 0 with a 64 KiB limit.
                Tr = new Segment { Limit = 0xFFFF, Type = 0xB, Present = true },
                Ldt = new Segment { Limit = 0xFFFF, Type = 0x2, Present = true },
                Gdt = new DescriptorTable(0, 0xFFFF),
                Idt = new DescriptorTable(0, 0xFFFF),
                Cr0 = ResetCr0,
                ApicBase = ResetApicBase,
            },
            Fpu = new FpuState(),
            MpState = MpState.Runnable,
        };
    }
}
