using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Vmm.Bios;

/// <summary>
/// The BIOS's code, assembled with Iced when a machine is built (no binary in git). Every handler is a few
/// instructions: the services are stubs that hand their register frame to the VMM through one port per vector
/// (<see cref="BiosLayout.ServicePortBase"/>) and IRET; the IRQ handlers acknowledge the PIC; IRQ 0 counts ticks in
/// the BIOS data area and chains int 1Ch, in guest code, so ticks advance the same way on both accelerators and
/// travel with RAM in a migration. Every other vector returns with CF set instead of running into zeros.
/// </summary>
public sealed class BiosRom
{
    /// <summary>Vectors whose service is written in C# (<see cref="BiosServices"/>).</summary>
    public static readonly int[] ServiceVectors = [0x10, 0x11, 0x12, 0x13, 0x15, 0x16, 0x18, 0x19, 0x1A];

    private BiosRom(byte[] image, ushort[] vectors)
    {
        Image = image;
        Vectors = vectors;
    }

    /// <summary>The 64 KiB ROM for F000:0000.</summary>
    public byte[] Image { get; }

    /// <summary>The IVT: the handler's offset in segment F000 for each of the 256 vectors.</summary>
    public IReadOnlyList<ushort> Vectors { get; }

    public static BiosRom Build()
    {
        var a = new Assembler(16);
        var labels = new Label[256];

        // Default: set CF in the caller's FLAGS image and return (BP+6 is FLAGS after PUSH BP).
        Label fallback = a.CreateLabel("default");
        a.Label(ref fallback);
        a.push(bp);
        a.mov(bp, sp);
        a.or(__word_ptr[bp + 6], 1);
        a.pop(bp);
        a.iret();

        // int 1Ch: the user timer hook, empty until a program takes it.
        Label userTick = a.CreateLabel("int1c");
        a.Label(ref userTick);
        a.iret();

        // IRQ 0: count ticks at 0040:006C, wrap at midnight (flag at 0040:0070), chain int 1Ch, EOI.
        Label irq0 = a.CreateLabel("irq0");
        Label noWrap = a.CreateLabel();
        a.Label(ref irq0);
        a.push(ds);
        a.push(eax);
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.mov(eax, __dword_ptr[(int)BiosDataArea.Ticks]);
        a.inc(eax);
        a.cmp(eax, BiosDataArea.TicksPerDay);
        a.jb(noWrap);
        a.xor(eax, eax);
        a.mov(__byte_ptr[(int)BiosDataArea.MidnightFlag], 1);
        a.Label(ref noWrap);
        a.mov(__dword_ptr[(int)BiosDataArea.Ticks], eax);
        a.@int(0x1C);
        a.mov(al, 0x20);
        a.@out(0x20, al);
        a.pop(eax);
        a.pop(ds);
        a.iret();

        // The other IRQs: nothing to service, but the PIC must hear an EOI (both chips for the slave's lines).
        Label masterIrq = a.CreateLabel("irq-master");
        a.Label(ref masterIrq);
        a.push(ax);
        a.mov(al, 0x20);
        a.@out(0x20, al);
        a.pop(ax);
        a.iret();
        Label slaveIrq = a.CreateLabel("irq-slave");
        a.Label(ref slaveIrq);
        a.push(ax);
        a.mov(al, 0x20);
        a.@out(0xA0, al);
        a.@out(0x20, al);
        a.pop(ax);
        a.iret();

        for (int v = 0; v < 256; v++)
        {
            labels[v] = v switch
            {
                0x08 => irq0,
                >= 0x09 and <= 0x0F => masterIrq,
                >= 0x70 and <= 0x77 => slaveIrq,
                0x1C => userTick,
                _ => fallback,
            };
        }

        foreach (int vector in ServiceVectors)
        {
            labels[vector] = EmitServiceStub(a, vector);
        }

        var stream = new MemoryStream();
        AssemblerResult result = a.Assemble(new StreamCodeWriter(stream), 0, BlockEncoderOptions.ReturnNewInstructionOffsets);
        byte[] image = new byte[BiosLayout.RomSize];
        byte[] code = stream.ToArray();
        code.CopyTo(image, 0);

        // F000:FFF0: a reset vector that restarts the boot (int 19h), the BIOS date and the model byte (AT).
        image[0xFFF0] = 0xCD;
        image[0xFFF1] = 0x19;
        System.Text.Encoding.ASCII.GetBytes("12/07/26").CopyTo(image, 0xFFF5);
        image[0xFFFE] = 0xFC;

        ushort[] vectors = new ushort[256];
        for (int v = 0; v < 256; v++)
        {
            vectors[v] = checked((ushort)result.GetLabelRIP(labels[v]));
        }

        return new BiosRom(image, vectors);
    }

    /// <summary>
    /// PUSH DS, ES, PUSHAD; EAX = SS:SP of that frame; OUT to the vector's port (the service runs in the VMM and edits
    /// the frame); IN from it: non-zero means wait for an interrupt and try again. Pops and IRETs the edited frame.
    /// </summary>
    private static Label EmitServiceStub(Assembler a, int vector)
    {
        Label entry = a.CreateLabel($"int{vector:x2}");
        Label done = a.CreateLabel();
        a.Label(ref entry);
        a.push(ds);
        a.push(es);
        a.pushad();
        a.mov(ax, ss);
        a.shl(eax, 16);
        a.mov(ax, sp);
        a.mov(dx, (ushort)(BiosLayout.ServicePortBase + vector));
        a.@out(dx, eax);
        a.@in(al, dx);
        a.test(al, al);
        a.popad();
        a.pop(es);
        a.pop(ds);
        a.jz(done);
        if (vector == 0x18)
        {
            // int 18h: no bootable device / ROM BASIC. Nothing to return to: power off.
            a.cli();
            a.hlt();
        }

        a.sti();
        a.hlt();
        a.jmp(entry);
        a.Label(ref done);
        a.iret();
        return entry;
    }
}
