using System.Net.Sockets;
using System.Text.Json.Nodes;
using Serilog;
using Vmm.Machine;

namespace Vmm.Qmp;

/// <summary>
/// The QMP monitor: a Unix socket (mode 0600) accepting any number of clients, each a <see cref="QmpSession"/>, and
/// the machine's events broadcast to every negotiated client. Disposing it delivers what is still queued (the
/// SHUTDOWN event above all) within a short bound, closes every client and removes the socket file.
/// </summary>
public sealed class QmpServer : IDisposable
{
    private static readonly TimeSpan FlushTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan RunningCommandTimeout = TimeSpan.FromSeconds(10);

    private readonly string path;
    private readonly Socket listener;
    private readonly VirtualMachine machine;
    private readonly ILogger log;
    private readonly QmpDispatcher dispatcher;
    private readonly HashSet<QmpSession> sessions = [];
    private readonly CancellationTokenSource stopping = new();
    private readonly ManualResetEventSlim shutdownAnnounced = new();
    private readonly Task acceptLoop;
    private int nextSessionId;
    private bool disposed;

    private QmpServer(string path, Socket listener, VirtualMachine machine, QmpCommandRegistry commands, ILogger log)
    {
        this.path = path;
        this.listener = listener;
        this.machine = machine;
        this.log = log;
        dispatcher = new QmpDispatcher(machine, commands, log);
        machine.Event += OnMachineEvent;
        machine.Migration.StatusChanged += OnMigrationStatus;
        machine.Migration.PassCompleted += OnMigrationPass;
        acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>The socket path as given on the command line.</summary>
    public string SocketPath => path;

    /// <summary>The command table: features register their command groups here.</summary>
    public QmpCommandRegistry Commands => dispatcher.Commands;

    /// <summary>
    /// Creates the socket (see <see cref="MonitorSocketFile"/>) and starts accepting clients.
    /// Throws <see cref="MonitorSocketException"/> with a user-facing message when the path cannot be used.
    /// </summary>
    public static QmpServer Start(string path, VirtualMachine machine, ILogger log, QmpCommandRegistry? commands = null)
    {
        Socket listener = MonitorSocketFile.Listen(path);
        var server = new QmpServer(path, listener, machine, commands ?? QmpCommandRegistry.CreateDefault(), log.ForContext("SourceContext", "qmp"));
        server.log.Information("QMP monitor listening on {Path}", path);
        return server;
    }

    /// <summary>Sends an event to every negotiated client. Never blocks; callable from any thread.</summary>
    public void Broadcast(string name, JsonObject? data = null)
    {
        byte[] line = QmpWire.Event(name, data, DateTimeOffset.UtcNow);
        QmpSession[] targets;
        lock (sessions)
        {
            targets = [.. sessions];
        }

        foreach (QmpSession session in targets)
        {
            session.SendEvent(line);
        }
    }

    private void OnMigrationStatus(Migration.MigrationStatus status) =>
        Broadcast("MIGRATION", new JsonObject { ["status"] = Migration.MigrationStatusNames.ToQmp(status) });

    private void OnMigrationPass(int pass) => Broadcast("MIGRATION_PASS", new JsonObject { ["pass"] = pass });

    private void OnMachineEvent(MachineEvent machineEvent)
    {
        try
        {
            (string name, JsonObject? data) = QmpEvents.From(machineEvent);
            Broadcast(name, data);
        }
        catch (Exception e)
        {
            // Raised on vCPU and command threads: a monitor problem must never propagate into the machine.
            log.Error(e, "could not send QMP event for {Event}", machineEvent);
        }
        finally
        {
            if (machineEvent.Kind == MachineEventKind.Shutdown)
            {
                shutdownAnnounced.Set();
            }
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (stopping.IsCancellationRequested && e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            catch (SocketException e)
            {
                // E.g. out of file descriptors: keep serving the clients we have, try again shortly.
                log.Warning("QMP accept failed: {Message}", e.Message);
                await Task.Delay(100).ConfigureAwait(false);
                continue;
            }

            var session = new QmpSession(Interlocked.Increment(ref nextSessionId), client, dispatcher, log);
            lock (sessions)
            {
                if (stopping.IsCancellationRequested)
                {
                    client.Dispose();
                    return;
                }

                sessions.Add(session);
            }

            _ = session.Completion.ContinueWith(_ => Forget(session), TaskScheduler.Default);
            log.Debug("QMP client {Session} connected", session.Id);
            session.Start(QmpWire.Greeting(QmpVersion.ToQmp()));
        }
    }

    private void Forget(QmpSession session)
    {
        lock (sessions)
        {
            sessions.Remove(session);
        }
    }

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        stopping.Cancel();
        listener.Dispose();
        MonitorSocketFile.Remove(path);

        // The machine completes Exited before it raises SHUTDOWN: give the event its moment so it goes out.
        if (machine.Exited.IsCompleted)
        {
            shutdownAnnounced.Wait(TimeSpan.FromSeconds(1));
        }

        dispatcher.Shutdown(RunningCommandTimeout);
        machine.Event -= OnMachineEvent;
        machine.Migration.StatusChanged -= OnMigrationStatus;
        machine.Migration.PassCompleted -= OnMigrationPass;

        QmpSession[] remaining;
        lock (sessions)
        {
            remaining = [.. sessions];
        }

        try
        {
            Task.WhenAll(remaining.Select(s => s.CloseAsync(FlushTimeout))).Wait(FlushTimeout + TimeSpan.FromSeconds(1));
            acceptLoop.Wait(TimeSpan.FromSeconds(1));
        }
        catch (AggregateException e)
        {
            log.Debug(e, "QMP clients did not close cleanly");
        }

        log.Debug("QMP monitor on {Path} closed", path);
    }
}
