using System.Net;
using System.Net.Sockets;

namespace Vmm.Migration;

/// <summary>Where a migration goes or comes from: tcp:HOST:PORT or unix:PATH.</summary>
public sealed record MigrationUri(string Text, EndPoint EndPoint)
{
    public static bool TryParse(string? text, out MigrationUri? uri, out string? error)
    {
        uri = null;
        error = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "empty migration URI (expected tcp:HOST:PORT or unix:PATH)";
            return false;
        }

        if (text.StartsWith("unix:", StringComparison.Ordinal) && text.Length > 5)
        {
            uri = new MigrationUri(text, new UnixDomainSocketEndPoint(text[5..]));
            return true;
        }

        if (text.StartsWith("tcp:", StringComparison.Ordinal))
        {
            string rest = text[4..];
            int colon = rest.LastIndexOf(':');
            if (colon > 0 && ushort.TryParse(rest[(colon + 1)..], out ushort port) && port != 0)
            {
                string host = rest[..colon].Trim('[', ']');
                EndPoint endPoint = IPAddress.TryParse(host, out IPAddress? address)
                    ? new IPEndPoint(address, port)
                    : new DnsEndPoint(host, port);
                uri = new MigrationUri(text, endPoint);
                return true;
            }
        }

        error = $"'{text}' is not a migration URI (expected tcp:HOST:PORT or unix:PATH)";
        return false;
    }

    public static MigrationUri Parse(string text) =>
        TryParse(text, out MigrationUri? uri, out string? error) ? uri! : throw new ArgumentException(error);

    public Socket CreateSocket() => EndPoint is UnixDomainSocketEndPoint
        ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        : new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
}
