using System.Net.Sockets;
using System.Security.Cryptography;
using Vmm.Linux;

namespace Vmm.Qmp;

/// <summary>
/// Creates the monitor's listening Unix socket at a user-chosen path, and removes it again.
/// The socket is bound inside a fresh 0700 directory next to the target, made 0600, and only then renamed into place,
/// so there is never a moment when another user could connect to it. An existing path is replaced only when it is a
/// socket nobody answers on (left behind by a killed VMM); a live socket or anything that is not a socket is refused.
/// </summary>
public static class MonitorSocketFile
{
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    public static Socket Listen(string path, int backlog = 16)
    {
        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath) ?? "/";
        bool replaceStale = ProbeExisting(path, fullPath);

        // Short on purpose: sun_path holds 107 bytes, and the temporary path must fit whenever the final one does.
        string privateDirectory = Path.Combine(directory, $".vmm{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}");
        string temporary = Path.Combine(privateDirectory, "s");
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            CreatePrivateDirectory(path, privateDirectory);
            socket.Bind(Endpoint(path, temporary));
            File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            socket.Listen(backlog);
            MoveIntoPlace(path, temporary, fullPath, replaceStale);
            return socket;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SocketException)
        {
            socket.Dispose();
            throw new MonitorSocketException($"cannot create monitor socket {path}: {e.Message}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        finally
        {
            TryDeleteDirectory(privateDirectory);
        }
    }

    /// <summary>Removes the socket file if it is still a socket (never a file someone put there since).</summary>
    public static void Remove(string path)
    {
        try
        {
            if (PathStatus.KindOf(path) == PathKind.Socket)
            {
                File.Delete(path);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort at exit: a socket left behind is detected as stale and replaced by the next VMM.
        }
    }

    /// <summary>Returns true when a stale socket is there to be replaced, false when the path is free; throws otherwise.</summary>
    private static bool ProbeExisting(string path, string fullPath)
    {
        PathKind kind;
        try
        {
            kind = PathStatus.KindOf(fullPath);
        }
        catch (LinuxException e)
        {
            throw new MonitorSocketException($"cannot use monitor socket path {path}: {e.Message}", e);
        }

        switch (kind)
        {
            case PathKind.Missing:
                return false;
            case PathKind.Socket:
                break;
            default:
                throw new MonitorSocketException($"monitor socket path {path} exists and is not a socket; refusing to replace it");
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            using var timeout = new CancellationTokenSource(ProbeTimeout);
            probe.ConnectAsync(Endpoint(path, fullPath), timeout.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            // Something holds the socket but does not accept: as good as alive.
        }
        catch (SocketException e)
        {
            throw new MonitorSocketException($"monitor socket {path} exists and cannot be probed: {e.Message}", e);
        }

        throw new MonitorSocketException($"monitor socket {path} is in use by another process");
    }

    private static void CreatePrivateDirectory(string path, string privateDirectory)
    {
        const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        if (PathStatus.KindOf(privateDirectory) != PathKind.Missing)
        {
            throw new MonitorSocketException($"cannot create monitor socket {path}: {privateDirectory} already exists");
        }

        Directory.CreateDirectory(privateDirectory, OwnerOnly);
        if (PathStatus.KindOf(privateDirectory) != PathKind.Directory || File.GetUnixFileMode(privateDirectory) != OwnerOnly)
        {
            throw new MonitorSocketException($"cannot create monitor socket {path}: {privateDirectory} is not a private directory");
        }
    }

    private static void MoveIntoPlace(string path, string temporary, string fullPath, bool replaceStale)
    {
        if (replaceStale)
        {
            File.Move(temporary, fullPath, overwrite: true);
            return;
        }

        try
        {
            // No-clobber move: if another process created the path since the probe, this fails instead of stealing it.
            File.Move(temporary, fullPath, overwrite: false);
        }
        catch (IOException) when (PathStatus.KindOf(fullPath) != PathKind.Missing)
        {
            throw new MonitorSocketException($"monitor socket {path} is in use by another process");
        }
    }

    private static UnixDomainSocketEndPoint Endpoint(string path, string socketPath)
    {
        try
        {
            return new UnixDomainSocketEndPoint(socketPath);
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new MonitorSocketException($"monitor socket path {path} is too long for a Unix socket (keep the full path under 96 bytes)");
        }
    }

    private static void TryDeleteDirectory(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Leaves an empty private directory behind; harmless.
        }
    }
}
