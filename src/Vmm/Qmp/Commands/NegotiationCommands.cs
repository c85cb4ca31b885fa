namespace Vmm.Qmp.Commands;

/// <summary>qmp_capabilities: the handshake that unlocks every other command for one client.</summary>
public static class NegotiationCommands
{
    public static void Register(QmpCommandRegistry registry)
    {
        registry.Add(new QmpCommand(
            QmpDispatcher.NegotiationCommand,
            [QmpParameter.Maybe("enable", QmpParameterType.StringList)],
            (context, arguments) =>
            {
                // vmm offers no optional capabilities (the greeting lists none), so any request for one is an error,
                // and negotiation stays incomplete, as in QEMU.
                if (arguments.Has("enable") && arguments.GetStringList("enable") is [string first, ..])
                {
                    throw QmpException.Generic($"Capability '{first}' not available");
                }

                context.Session.CompleteNegotiation();
                return null;
            }));
    }
}
