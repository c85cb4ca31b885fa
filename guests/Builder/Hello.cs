using static Vmm.Guests.RealModeRoutines;

namespace Vmm.Guests;

/// <summary>The smallest end-to-end check: serial output and the clean exit.</summary>
public sealed class Hello : IGuest
{
    /// <summary>Everything the guest writes to COM1.</summary>
    public const string Output = "Hello from vmm!\r\n";

    public string Name => "hello";

    public string Description => "prints \"Hello from vmm!\" on COM1, then cli; hlt (exit status 0)";

    public GuestImage Build() => GuestAssembler.Build(g =>
    {
        Prologue(g);
        Print(g, Output);
        PowerOff(g);
    });
}
