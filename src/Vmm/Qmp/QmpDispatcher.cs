using System.Text.Json.Nodes;
using Serilog;
using Vmm.Machine;

namespace Vmm.Qmp;

/// <summary>
/// Turns a request into a reply: negotiation rules, command lookup, argument checks, then the command itself.
/// Commands from all clients run one at a time (QEMU runs them under its big lock too): stop, cont, reset and the
/// RAM commands pause and resume vCPUs, and two of those interleaved would resume a machine another client just
/// paused. Every failure becomes a QMP error; nothing a client sends can throw out of here.
/// </summary>
public sealed class QmpDispatcher(VirtualMachine machine, QmpCommandRegistry commands, ILogger log)
{
    public const string NegotiationCommand = "qmp_capabilities";

    private readonly SemaphoreSlim gate = new(1, 1);
    private readonly CancellationTokenSource shuttingDown = new();

    public QmpCommandRegistry Commands => commands;

    public async Task<QmpReply> ExecuteAsync(QmpSession session, QmpRequest request, CancellationToken cancellation)
    {
        try
        {
            QmpCommand command = Resolve(session, request.Command);
            QmpArguments arguments = QmpArguments.Bind(command.Parameters, request.Arguments);
            var context = new QmpCommandContext(machine, commands, session, shuttingDown.Token);
            await gate.WaitAsync(cancellation).ConfigureAwait(false);
            JsonNode? result;
            try
            {
                if (shuttingDown.IsCancellationRequested)
                {
                    throw QmpException.Generic("the VMM is shutting down");
                }

                result = command.Handler(context, arguments);
            }
            finally
            {
                gate.Release();
            }

            return new QmpReply(QmpWire.Return(result, request.IdJson), context.TakeAfterReplyActions());
        }
        catch (QmpException e)
        {
            return Error(e.ErrorClass, e.Message, request.IdJson);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested || shuttingDown.IsCancellationRequested)
        {
            return Error(QmpErrorClass.GenericError, "the VMM is shutting down", request.IdJson);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            // The machine's and the file system's own messages are written for users already.
            return Error(QmpErrorClass.GenericError, UserMessage(e), request.IdJson);
        }
        catch (Exception e)
        {
            log.Error(e, "QMP command {Command} failed", request.Command);
            return Error(QmpErrorClass.GenericError, $"internal error in '{request.Command}': {e.Message}", request.IdJson);
        }
    }

    /// <summary>
    /// Called once at exit: waits for a running command to finish (long ones watch the cancellation and stop), then
    /// refuses all further commands, so the machine can be torn down under nobody's feet.
    /// </summary>
    public void Shutdown(TimeSpan timeout)
    {
        shuttingDown.Cancel();
        if (!gate.Wait(timeout))
        {
            log.Warning("a QMP command was still running at exit");
        }
    }

    private QmpCommand Resolve(QmpSession session, string name)
    {
        if (!session.IsNegotiated && name != NegotiationCommand)
        {
            throw QmpException.CommandNotFound("Expecting capabilities negotiation with 'qmp_capabilities'");
        }

        if (session.IsNegotiated && name == NegotiationCommand)
        {
            throw QmpException.CommandNotFound("Capabilities negotiation is already complete, command ignored");
        }

        return commands.Find(name) ?? throw QmpException.CommandNotFound($"The command {name} has not been found");
    }

    private static QmpReply Error(string errorClass, string description, string? idJson) =>
        new(QmpWire.Error(errorClass, description, idJson), []);

    /// <summary>ArgumentException appends " (Parameter 'x')" to its message; users do not need the C# parameter name.</summary>
    private static string UserMessage(Exception e)
    {
        string message = e.Message;
        if (e is ArgumentException { ParamName: { } parameter })
        {
            string suffix = $" (Parameter '{parameter}')";
            if (message.EndsWith(suffix, StringComparison.Ordinal))
            {
                message = message[..^suffix.Length];
            }
        }

        return message;
    }
}
