using System.Text.Json.Nodes;
using Vmm.Machine;

namespace Vmm.Qmp.Commands;

/// <summary>query-status, stop, cont, system_reset, quit: the machine's run state, as in QEMU.</summary>
public static class RunControlCommands
{
    public static void Register(QmpCommandRegistry registry)
    {
        registry.Add(new QmpCommand("query-status", (context, _) => Status(context.Machine.RunState)));
        registry.Add(new QmpCommand("stop", (context, _) =>
        {
            context.Machine.Stop();
            return null;
        }));
        registry.Add(new QmpCommand("cont", (context, _) =>
        {
            if (context.Machine.RunState == RunState.Shutdown)
            {
                throw QmpException.Generic("The guest has shut down; it cannot be continued");
            }

            RefuseWhileArriving(context.Machine, "continued");
            context.Machine.Continue();
            return null;
        }));
        registry.Add(new QmpCommand("system_reset", (context, _) =>
        {
            if (context.Machine.RunState == RunState.Shutdown)
            {
                throw QmpException.Generic("The guest has shut down; it cannot be reset");
            }

            RefuseWhileArriving(context.Machine, "reset");

            context.Machine.Reset();
            return null;
        }));
        registry.Add(new QmpCommand("quit", (context, _) =>
        {
            // Answer first, then end: the client sees {"return": {}} and then SHUTDOWN, as with QEMU.
            context.AfterReply(() => context.Machine.RequestExit(MachineExit.Quit("quit requested on the QMP monitor")));
            return null;
        }));
    }

    /// <summary>
    /// A destination waiting for (or receiving) a migration has no guest of its own yet: its memory is half there and
    /// its vCPU threads are parked for the switchover. It starts when the migration completes, not on request.
    /// </summary>
    private static void RefuseWhileArriving(VirtualMachine machine, string what)
    {
        if (machine.RunState == RunState.InMigrate)
        {
            throw QmpException.Generic($"The guest is still arriving by migration (inmigrate); it cannot be {what}: it starts when the migration completes");
        }
    }

    /// <summary>QEMU's StatusInfo: {"running": …, "singlestep": false, "status": …}.</summary>
    public static JsonObject Status(RunState state) => new()
    {
        ["running"] = state == RunState.Running,
        ["singlestep"] = false,
        ["status"] = state.ToQmp(),
    };
}
