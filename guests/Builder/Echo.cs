using static Iced.Intel.AssemblerRegisters;
using static Vmm.Guests.RealModeRoutines;

namespace Vmm.Guests;

/// <summary>Serial receive path: echoes COM1 input until Ctrl-D.</summary>
public sealed class Echo : IGuest
{
    public const string Banner = "echo: ready\r\n";

    /// <summary>EOT (Ctrl-D): not echoed; ends the guest.</summary>
    public const byte EndOfTransmission = 0x04;

    public string Name => "echo";

    public string Description =>
        "prints \"echo: ready\", then echoes every byte received on COM1 until 0x04 (Ctrl-D, not echoed), then cli; hlt (exit status 0)";

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        var a = g.Asm;
        Prologue(g);
        Print(g, Banner);

        // Polling, not interrupts: there is no interrupt controller setup and IF stays 0.
        g.Bind("wait");
        a.mov(dx, Machine.Com1Lsr);
        a.@in(al, dx);
        a.test(al, Machine.LsrDataReady);
        a.jz(g.L("wait"));
        a.mov(dx, Machine.Com1Data);
        a.@in(al, dx);
        a.cmp(al, EndOfTransmission);
        a.je(g.L("done"));
        g.Call(Putc);
        a.jmp(g.L("wait"));

        g.Bind("done");
        PowerOff(g);
    });
}
